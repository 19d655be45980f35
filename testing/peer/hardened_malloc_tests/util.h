/* Shim for NitroHeap's peer-test runner (not part of hardened_malloc): the
 * one macro the vendored tests take from hardened_malloc's util.h. */
#ifndef NITROHEAP_PEER_UTIL_SHIM_H_
#define NITROHEAP_PEER_UTIL_SHIM_H_

#define UNUSED __attribute__((unused))

#endif
