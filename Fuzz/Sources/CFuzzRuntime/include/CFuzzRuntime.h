// What the fuzz targets use of the fuzzer and sanitizer runtimes that `-sanitize=fuzzer,address`
// links in (see FuzzSupport/Entry.swift and SegmentOracle).
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver: what libFuzzer's own main() calls.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

// AddressSanitizer's manual poisoning, or nothing in a build without AddressSanitizer: a read
// of poisoned bytes is reported like a heap overflow.
void fuzz_poison(const void *address, size_t size);
void fuzz_unpoison(const void *address, size_t size);
