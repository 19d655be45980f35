/* Enumerating a heap: the HeapWalk example of Microsoft's Win32
 * documentation ("Enumerating a Heap", Heap Functions), ported to Linux in
 * the same shape. The changes: <windows.h>/<tchar.h> become
 * <nitroheap/win_heap.h>, _tprintf(TEXT(...)) becomes printf, %#p becomes
 * %p (glibc's %p already prints 0x), "Allocated block" ends its line, and
 * before walking it allocates a few
 * blocks (in a fixed-size heap when given "fixed") so the walk has
 * something to show besides the region.
 *
 *   heap_walk [fixed]
 */
#include <stdio.h>
#include <string.h>

#include <nitroheap/win_heap.h>

int main(int argc, char** argv) {
  DWORD LastError;
  HANDLE hHeap;
  PROCESS_HEAP_ENTRY Entry;
  int fixed = argc > 1 && strcmp(argv[1], "fixed") == 0;

  //
  // Create a new heap with default parameters (or, with "fixed", one of
  // at most 64 KiB).
  //
  hHeap = HeapCreate(0, 0, fixed ? 65536 : 0);
  if (hHeap == NULL) {
    printf("Failed to create a new heap with LastError %d.\n", GetLastError());
    return 1;
  }

  // The port's addition: something to walk.
  for (int i = 1; i <= 3; i++) {
    if (HeapAlloc(hHeap, HEAP_ZERO_MEMORY, (SIZE_T)i * 100) == NULL) {
      printf("Failed to allocate with LastError %d.\n", GetLastError());
      return 1;
    }
  }

  //
  // Lock the heap to prevent other threads from accessing the heap
  // during enumeration.
  //
  if (HeapLock(hHeap) == FALSE) {
    printf("Failed to lock heap with LastError %d.\n", GetLastError());
    return 1;
  }

  printf("Walking heap %p...\n\n", hHeap);

  Entry.lpData = NULL;
  while (HeapWalk(hHeap, &Entry) != FALSE) {
    if ((Entry.wFlags & PROCESS_HEAP_ENTRY_BUSY) != 0) {
      printf("Allocated block");

      if ((Entry.wFlags & PROCESS_HEAP_ENTRY_MOVEABLE) != 0) {
        printf(", movable with HANDLE %p", Entry.Block.hMem);
      }

      if ((Entry.wFlags & PROCESS_HEAP_ENTRY_DDESHARE) != 0) {
        printf(", DDESHARE");
      }
      printf("\n");
    } else if ((Entry.wFlags & PROCESS_HEAP_REGION) != 0) {
      printf("Region\n  %d bytes committed\n"
             "  %d bytes uncommitted\n  First block address: %p\n"
             "  Last block address: %p\n",
             Entry.Region.dwCommittedSize, Entry.Region.dwUnCommittedSize, Entry.Region.lpFirstBlock,
             Entry.Region.lpLastBlock);
    } else if ((Entry.wFlags & PROCESS_HEAP_UNCOMMITTED_RANGE) != 0) {
      printf("Uncommitted range\n");
    } else {
      printf("Block\n");
    }

    printf("  Data portion begins at: %p\n  Size: %d bytes\n"
           "  Overhead: %d bytes\n  Region index: %d\n\n",
           Entry.lpData, Entry.cbData, Entry.cbOverhead, Entry.iRegionIndex);
  }
  LastError = GetLastError();
  if (LastError != ERROR_NO_MORE_ITEMS) {
    printf("HeapWalk failed with LastError %d.\n", LastError);
  }

  //
  // Unlock the heap to allow other threads to access the heap after
  // enumeration has completed.
  //
  if (HeapUnlock(hHeap) == FALSE) {
    printf("Failed to unlock heap with LastError %d.\n", GetLastError());
  }

  //
  // When a process terminates, allocated memory is reclaimed by the operating
  // system so it is not really necessary to call HeapDestroy in the example.
  // However, it may be advisable to call HeapDestroy in a larger program.
  //
  if (HeapDestroy(hHeap) == FALSE) {
    printf("Failed to destroy heap with LastError %d.\n", GetLastError());
  }

  return 0;
}
