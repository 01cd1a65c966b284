// Debian's libpq-dev: the PostgreSQL client library (found through pkg-config `libpq`).
#include <libpq-fe.h>
