#include "CFuzzRuntime.h"

// Weak: present only when AddressSanitizer's runtime is linked in.
void __asan_poison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));
void __asan_unpoison_memory_region(void const volatile *addr, size_t size) __attribute__((weak));

void fuzz_poison(const void *address, size_t size) {
    if (__asan_poison_memory_region) __asan_poison_memory_region(address, size);
}

void fuzz_unpoison(const void *address, size_t size) {
    if (__asan_unpoison_memory_region) __asan_unpoison_memory_region(address, size);
}
