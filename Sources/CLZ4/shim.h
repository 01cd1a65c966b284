// Debian's liblz4-dev: the block API (LZ4_compress_default, LZ4_decompress_safe).
#include <lz4.h>
