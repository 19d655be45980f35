// Stand-in for a `malloc =` library: defines a marker symbol only and leaves
// allocation to libc. Real replacement allocators go here.
extern "C" int nitro_fake_malloc_linked() { return 1; }
