/*
 * faultfs - a passthrough FUSE filesystem with runtime-switchable fault injection,
 * for testing Tally's write-ahead log (pwrite + fdatasync) against disk errors.
 *
 * Build:  gcc -O2 -Wall faultfs.c $(pkg-config --cflags --libs fuse3) -o faultfs
 * Usage:  faultfs <backing-dir> <mountpoint> <control-file> [-f] [-d] [-o opt,...]
 *
 * Control file: its first line (must end in '\n') selects the mode; it is checked with
 * one stat() at the start of every filesystem operation and re-read whenever its
 * (dev, inode, size, mtime, ctime) changes:
 *     ok                   passthrough
 *     enospc               a full disk: a write that would grow its file, fallocate,
 *                          and every creation (create, mknod, mkdir, symlink, link) fail
 *                          with ENOSPC, nothing written; a write within the file's size
 *                          (an overwrite of allocated bytes) succeeds, as on a full ext4
 *     enospc-after <N>     the next N bytes of write payload (and of fallocate) are
 *                          allowed, then ENOSPC; the write that crosses the limit is cut
 *                          short (returns fewer bytes); once the budget is 0 this is
 *                          exactly "enospc"
 *     eio-fsync            fsync/fdatasync on files and fsync on directories fail
 *                          with EIO (the backing fsync is not run)
 *     eio-fsync-files      like eio-fsync, but only regular files; directories sync fine
 * Counters: <control-file>.status (key=value lines, replaced atomically by rename),
 * rewritten at once on every mode change and every injected failure, otherwise at most
 * every 10 ms while counters change, and at unmount.
 *
 * Mount options added by default (later -o options override): default_permissions,
 * auto_unmount, attr_timeout=0, entry_timeout=0, negative_timeout=0, max_threads=16,
 * max_idle_threads=8, and allow_other when run as root. Always: direct_io (writes and
 * fsyncs reach the handlers synchronously), no writeback cache, hard_remove, use_ino.
 *
 * Extra option: -o remote_flock  forward flock() to the backing file (default: the
 * kernel keeps flock locks itself, which is what processes using the mount need).
 * The control file must not be inside the mountpoint.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <fuse.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ state */

enum mode { M_OK, M_ENOSPC, M_ENOSPC_AFTER, M_EIO_FSYNC, M_EIO_FSYNC_FILES };
static const char *mode_names[] = { "ok", "enospc", "enospc-after", "eio-fsync", "eio-fsync-files" };

static int backing_fd = -1;        /* the backing directory, opened before mounting */
static char backing_path[PATH_MAX];
static char ctl_path[PATH_MAX];
static char status_path[PATH_MAX + 16];
static char status_tmp[PATH_MAX + 32];

static struct { int remote_flock; } opts;

/* Everything below is guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static enum mode mode = M_OK;
static uint64_t budget;            /* enospc-after: bytes still allowed */
static uint64_t generation;        /* bumped on every accepted control-file change */
static char ctl_error[160] = "none";
static int dirty;

#define COUNTERS(X) \
    X(writes) X(write_bytes) X(reads) X(read_bytes) X(fsyncs) X(fdatasyncs) X(fsyncdirs) \
    X(opens) X(creates) X(mkdirs) X(renames) X(unlinks) X(rmdirs) X(truncates) \
    X(fallocates) X(flocks) X(injected_total) X(injected_write_enospc) \
    X(injected_short_writes) X(injected_create_enospc) X(injected_fallocate_enospc) \
    X(injected_fsync_eio) X(injected_fsyncdir_eio)
#define DECL(n) uint64_t n;
static struct { COUNTERS(DECL) } cnt;

/* Control-file identity last applied; guarded by ctl_mu (taken before mu). */
static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static int have_ident;
static struct stat ident;

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t status_thread;
static volatile int status_stop;

/* -------------------------------------------------------------- status file */

static void write_status(void)
{
    char buf[4096];
    int len;
    pthread_mutex_lock(&status_mu);
    pthread_mutex_lock(&mu);
    len = snprintf(buf, sizeof buf,
                   "pid=%d\nmode=%s\nenospc_after_remaining=%" PRIu64 "\ngeneration=%" PRIu64
                   "\ncontrol_error=%s\n",
                   (int)getpid(), mode_names[mode], mode == M_ENOSPC_AFTER ? budget : 0,
                   generation, ctl_error);
#define PRINT(n) len += snprintf(buf + len, sizeof buf - len, #n "=%" PRIu64 "\n", cnt.n);
    COUNTERS(PRINT)
    dirty = 0;
    pthread_mutex_unlock(&mu);

    int fd = open(status_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, buf, len);
        close(fd);
        if (w == len)
            rename(status_tmp, status_path);
    }
    pthread_mutex_unlock(&status_mu);
}

static void *status_loop(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    while (!status_stop) {
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&mu);
        int d = dirty;
        pthread_mutex_unlock(&mu);
        if (d)
            write_status();
    }
    return NULL;
}

/* ------------------------------------------------------------- control file */

static int same_ident(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Parses one command line; returns 0 and sets *m / *n, or -1. */
static int parse_command(char *line, enum mode *m, uint64_t *n)
{
    char *s = line, *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    if (!strcmp(s, "ok")) { *m = M_OK; return 0; }
    if (!strcmp(s, "enospc")) { *m = M_ENOSPC; return 0; }
    if (!strcmp(s, "eio-fsync")) { *m = M_EIO_FSYNC; return 0; }
    if (!strcmp(s, "eio-fsync-files")) { *m = M_EIO_FSYNC_FILES; return 0; }
    if (!strncmp(s, "enospc-after", 12) && isspace((unsigned char)s[12])) {
        char *p = s + 12, *end;
        while (isspace((unsigned char)*p))
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || *end)
            return -1;
        *m = M_ENOSPC_AFTER;
        *n = v;
        return 0;
    }
    return -1;
}

/* Called at the start of every operation: one stat(), and a re-read only on change. */
static void refresh_control(void)
{
    struct stat a, b;
    if (stat(ctl_path, &a) != 0)
        return;                         /* missing: keep the current mode */
    pthread_mutex_lock(&ctl_mu);
    if (have_ident && same_ident(&a, &ident)) {
        pthread_mutex_unlock(&ctl_mu);
        return;
    }
    char buf[256];
    ssize_t n = -1;
    for (int tries = 0; tries < 5; tries++) {
        int fd = open(ctl_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        if (fstat(fd, &a) == 0) {
            n = pread(fd, buf, sizeof buf - 1, 0);
            if (fstat(fd, &b) != 0 || !same_ident(&a, &b))
                n = -1;                 /* changed while reading: read again */
        }
        close(fd);
        if (n >= 0)
            break;
    }
    char *nl = n > 0 ? memchr(buf, '\n', n) : NULL;
    if (!nl) {                          /* empty or half-written: ignore until complete */
        pthread_mutex_unlock(&ctl_mu);
        return;
    }
    *nl = 0;
    ident = b;
    have_ident = 1;
    enum mode m;
    uint64_t v = 0;
    int ok = parse_command(buf, &m, &v) == 0;
    pthread_mutex_lock(&mu);
    if (ok) {
        mode = m;
        budget = v;
        generation++;
        snprintf(ctl_error, sizeof ctl_error, "none");
    } else {
        snprintf(ctl_error, sizeof ctl_error, "unknown command '%.100s' (mode unchanged)", buf);
    }
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&ctl_mu);
    if (!ok)
        fprintf(stderr, "faultfs: %s\n", ctl_error);
    write_status();
}

/* Counts an operation (and marks the status dirty). */
#define COUNT(n) do { pthread_mutex_lock(&mu); cnt.n++; dirty = 1; pthread_mutex_unlock(&mu); } while (0)

/* Creation check: ENOSPC in "enospc" and in an exhausted "enospc-after". */
static int check_create(uint64_t *counter)
{
    int inject;
    refresh_control();
    pthread_mutex_lock(&mu);
    if (counter)
        (*counter)++;
    inject = mode == M_ENOSPC || (mode == M_ENOSPC_AFTER && budget == 0);
    if (inject) {
        cnt.injected_create_enospc++;
        cnt.injected_total++;
    }
    dirty = 1;
    pthread_mutex_unlock(&mu);
    if (inject)
        write_status();
    return inject ? -ENOSPC : 0;
}

/* ------------------------------------------------------------------ helpers */

static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

/* Files created for another user (we run as root) get that user as owner. */
static void give_to_caller(int fd, const char *relpath)
{
    struct fuse_context *c = fuse_get_context();
    if (geteuid() != 0 || !c || (c->uid == 0 && c->gid == 0))
        return;
    if (fd >= 0)
        (void)!fchown(fd, c->uid, c->gid);
    else
        (void)!fchownat(backing_fd, relpath, c->uid, c->gid, AT_SYMLINK_NOFOLLOW);
}

/* --------------------------------------------------------------- operations */

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->use_ino = 1;
    cfg->hard_remove = 1;   /* no .fuse_hidden files when an open file is unlinked/replaced */
    cfg->nullpath_ok = 1;
    cfg->direct_io = 1;     /* every write goes to ff_write, errors come back from write(2) */
    cfg->kernel_cache = 0;
    cfg->auto_cache = 0;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    if (!opts.remote_flock)
        conn->want &= ~FUSE_CAP_FLOCK_LOCKS;
    conn->want &= ~FUSE_CAP_POSIX_LOCKS;    /* fcntl locks: kernel-local as well */
    if (pthread_create(&status_thread, NULL, status_loop, NULL) != 0)
        status_thread = 0;
    write_status();
    return NULL;
}

static void ff_destroy(void *data)
{
    (void)data;
    status_stop = 1;
    if (status_thread)
        pthread_join(status_thread, NULL);
    write_status();
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    int r = fi ? fstat(fi->fh, st) : fstatat(backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_access(const char *path, int mask)
{
    return faccessat(backing_fd, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int ff_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(backing_fd, rel(path), buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = 0;
    return 0;
}

static int ff_mknod(const char *path, mode_t m, dev_t rdev)
{
    int r = check_create(&cnt.creates);
    if (r)
        return r;
    if (mknodat(backing_fd, rel(path), m, rdev) != 0)
        return -errno;
    give_to_caller(-1, rel(path));
    return 0;
}

static int ff_mkdir(const char *path, mode_t m)
{
    int r = check_create(&cnt.mkdirs);
    if (r)
        return r;
    if (mkdirat(backing_fd, rel(path), m) != 0)
        return -errno;
    give_to_caller(-1, rel(path));
    return 0;
}

static int ff_symlink(const char *target, const char *path)
{
    int r = check_create(NULL);
    if (r)
        return r;
    if (symlinkat(target, backing_fd, rel(path)) != 0)
        return -errno;
    give_to_caller(-1, rel(path));
    return 0;
}

static int ff_link(const char *from, const char *to)
{
    int r = check_create(NULL);
    if (r)
        return r;
    return linkat(backing_fd, rel(from), backing_fd, rel(to), 0) == 0 ? 0 : -errno;
}

static int ff_unlink(const char *path)
{
    refresh_control();
    COUNT(unlinks);
    return unlinkat(backing_fd, rel(path), 0) == 0 ? 0 : -errno;
}

static int ff_rmdir(const char *path)
{
    refresh_control();
    COUNT(rmdirs);
    return unlinkat(backing_fd, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int ff_rename(const char *from, const char *to, unsigned int flags)
{
    refresh_control();
    COUNT(renames);
    return renameat2(backing_fd, rel(from), backing_fd, rel(to), flags) == 0 ? 0 : -errno;
}

static int ff_chmod(const char *path, mode_t m, struct fuse_file_info *fi)
{
    int r = fi ? fchmod(fi->fh, m) : fchmodat(backing_fd, rel(path), m, 0);
    return r == 0 ? 0 : -errno;
}

static int ff_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    int r = fi ? fchown(fi->fh, uid, gid)
               : fchownat(backing_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    refresh_control();
    COUNT(truncates);
    if (fi)
        return ftruncate(fi->fh, size) == 0 ? 0 : -errno;
    int fd = openat(backing_fd, rel(path), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = ftruncate(fd, size) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    int r = fi ? futimens(fi->fh, tv) : utimensat(backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return r == 0 ? 0 : -errno;
}

/* O_DIRECT is not passed on: the daemon's buffers need not be aligned, and the page
 * cache of faultfs itself is bypassed anyway (direct_io). */
#define OPEN_FLAGS(f) (((f) & ~(O_DIRECT | O_NOCTTY)) | O_CLOEXEC)

static int ff_open(const char *path, struct fuse_file_info *fi)
{
    refresh_control();
    COUNT(opens);
    int fd = openat(backing_fd, rel(path), OPEN_FLAGS(fi->flags) & ~(O_CREAT | O_EXCL));
    if (fd < 0)
        return -errno;
    fi->fh = fd;
    fi->direct_io = 1;
    return 0;
}

static int ff_create(const char *path, mode_t m, struct fuse_file_info *fi)
{
    int r = check_create(&cnt.creates);
    if (r)
        return r;
    int fd = openat(backing_fd, rel(path), OPEN_FLAGS(fi->flags) | O_CREAT, m);
    if (fd < 0)
        return -errno;
    give_to_caller(fd, NULL);
    fi->fh = fd;
    fi->direct_io = 1;
    return 0;
}

static int ff_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    refresh_control();
    ssize_t n = pread(fi->fh, buf, size, off);
    if (n < 0)
        return -errno;
    pthread_mutex_lock(&mu);
    cnt.reads++;
    cnt.read_bytes += n;
    dirty = 1;
    pthread_mutex_unlock(&mu);
    return n;
}

static int ff_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    refresh_control();
    size_t allow = size;
    int inject = 0, shortened = 0;
    uint64_t gen;
    pthread_mutex_lock(&mu);
    cnt.writes++;
    dirty = 1;
    gen = generation;
    struct stat st;
    int grows = fstat(fi->fh, &st) != 0 || off + (off_t)size > st.st_size;
    if ((mode == M_ENOSPC && grows) || (mode == M_ENOSPC_AFTER && budget == 0 && size > 0)) {
        inject = 1;
        cnt.injected_write_enospc++;
        cnt.injected_total++;
    } else if (mode == M_ENOSPC_AFTER) {
        if (size > budget) {
            allow = budget;
            shortened = 1;
            cnt.injected_short_writes++;
            cnt.injected_total++;
        }
        budget -= allow;                /* reserve; unused bytes are given back below */
    }
    pthread_mutex_unlock(&mu);
    if (inject || shortened)
        write_status();
    if (inject)
        return -ENOSPC;

    ssize_t n = pwrite(fi->fh, buf, allow, off);
    int err = errno;
    pthread_mutex_lock(&mu);
    if (n > 0)
        cnt.write_bytes += n;
    if (mode == M_ENOSPC_AFTER && generation == gen && (size_t)(n < 0 ? 0 : n) < allow)
        budget += allow - (n < 0 ? 0 : n);
    pthread_mutex_unlock(&mu);
    return n < 0 ? -err : (int)n;
}

static int ff_statfs(const char *path, struct statvfs *st)
{
    return fstatvfs(backing_fd, st) == 0 ? 0 : -errno;
}

static int ff_flush(const char *path, struct fuse_file_info *fi)
{
    return 0;   /* nothing buffered here; close(2) never fails because of faultfs */
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
    close(fi->fh);
    return 0;
}

/* Returns -EIO if this fsync is to fail; counts it either way. */
static int fsync_fault(int is_dir, int datasync)
{
    int inject;
    refresh_control();
    pthread_mutex_lock(&mu);
    if (is_dir)
        cnt.fsyncdirs++;
    else if (datasync)
        cnt.fdatasyncs++;
    else
        cnt.fsyncs++;
    inject = mode == M_EIO_FSYNC || (mode == M_EIO_FSYNC_FILES && !is_dir);
    if (inject) {
        if (is_dir)
            cnt.injected_fsyncdir_eio++;
        else
            cnt.injected_fsync_eio++;
        cnt.injected_total++;
    }
    dirty = 1;
    pthread_mutex_unlock(&mu);
    if (inject)
        write_status();
    return inject ? -EIO : 0;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    int r = fsync_fault(0, datasync);
    if (r)
        return r;
    r = datasync ? fdatasync(fi->fh) : fsync(fi->fh);
    return r == 0 ? 0 : -errno;
}

static int ff_fallocate(const char *path, int m, off_t off, off_t len, struct fuse_file_info *fi)
{
    refresh_control();
    int inject;
    pthread_mutex_lock(&mu);
    cnt.fallocates++;
    dirty = 1;
    /* only allocating calls fail; punching holes etc. never needs space */
    inject = !(m & ~FALLOC_FL_KEEP_SIZE) &&
             (mode == M_ENOSPC || (mode == M_ENOSPC_AFTER && budget < (uint64_t)len));
    if (inject) {
        cnt.injected_fallocate_enospc++;
        cnt.injected_total++;
    } else if (mode == M_ENOSPC_AFTER && !(m & ~FALLOC_FL_KEEP_SIZE)) {
        budget -= len;                  /* an allocation uses up budget like a write */
    }
    pthread_mutex_unlock(&mu);
    if (inject) {
        write_status();
        return -ENOSPC;
    }
    return fallocate(fi->fh, m, off, len) == 0 ? 0 : -errno;
}

static int ff_flock(const char *path, struct fuse_file_info *fi, int op)
{
    /* Only with -o remote_flock. Blocking requests poll so that an interrupted
     * (e.g. killed) waiter does not leave a daemon thread stuck in flock(2). */
    COUNT(flocks);
    int nb = op & LOCK_NB;
    long delay_us = 200;
    for (;;) {
        if (flock(fi->fh, op | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK || nb)
            return -errno;
        if (fuse_interrupted())
            return -EINTR;
        usleep(delay_us);
        if (delay_us < 10000)
            delay_us *= 2;
    }
}

struct dir_handle { DIR *dir; };

static int ff_opendir(const char *path, struct fuse_file_info *fi)
{
    refresh_control();
    int fd = openat(backing_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    fi->fh = (uintptr_t)d;
    return 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    DIR *d = (DIR *)(uintptr_t)fi->fh;
    struct dirent *e;
    rewinddir(d);       /* offset-0 mode: the whole listing in one call */
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = e->d_ino;
        st.st_mode = DTTOIF(e->d_type);
        if (filler(buf, e->d_name, &st, 0, 0))
            break;
    }
    return errno ? -errno : 0;
}

static int ff_releasedir(const char *path, struct fuse_file_info *fi)
{
    closedir((DIR *)(uintptr_t)fi->fh);
    return 0;
}

static int ff_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    int r = fsync_fault(1, datasync);
    if (r)
        return r;
    int fd = dirfd((DIR *)(uintptr_t)fi->fh);
    r = datasync ? fdatasync(fd) : fsync(fd);
    return r == 0 ? 0 : -errno;
}

static const struct fuse_operations ff_ops = {
    .init = ff_init,
    .destroy = ff_destroy,
    .getattr = ff_getattr,
    .access = ff_access,
    .readlink = ff_readlink,
    .mknod = ff_mknod,
    .mkdir = ff_mkdir,
    .symlink = ff_symlink,
    .link = ff_link,
    .unlink = ff_unlink,
    .rmdir = ff_rmdir,
    .rename = ff_rename,
    .chmod = ff_chmod,
    .chown = ff_chown,
    .truncate = ff_truncate,
    .utimens = ff_utimens,
    .open = ff_open,
    .create = ff_create,
    .read = ff_read,
    .write = ff_write,
    .statfs = ff_statfs,
    .flush = ff_flush,
    .release = ff_release,
    .fsync = ff_fsync,
    .fallocate = ff_fallocate,
    .flock = ff_flock,
    .opendir = ff_opendir,
    .readdir = ff_readdir,
    .releasedir = ff_releasedir,
    .fsyncdir = ff_fsyncdir,
};

/* ---------------------------------------------------------------------- main */

static const struct fuse_opt ff_opts[] = {
    { "remote_flock", offsetof(typeof(opts), remote_flock), 1 },
    FUSE_OPT_END
};

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s <backing-dir> <mountpoint> <control-file> [-f] [-d] [-s] [-o opt,...]\n"
            "  control file first line: ok | enospc | enospc-after <bytes> | eio-fsync |\n"
            "                           eio-fsync-files   (must end with a newline)\n"
            "  counters: <control-file>.status\n"
            "  faultfs options: -o remote_flock (forward flock to the backing file)\n"
            "  defaults added: -o default_permissions,auto_unmount,attr_timeout=0,\n"
            "                  entry_timeout=0,negative_timeout=0,max_threads=16,max_idle_threads=8 (+allow_other)\n",
            prog);
}

int main(int argc, char *argv[])
{
    if (argc < 4 || argv[1][0] == '-' || argv[2][0] == '-' || argv[3][0] == '-') {
        usage(argv[0]);
        return 2;
    }
    if (!realpath(argv[1], backing_path)) {
        perror(argv[1]);
        return 1;
    }
    backing_fd = open(backing_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (backing_fd < 0) {
        perror(argv[1]);
        return 1;
    }
    /* Absolute control path: works from any cwd (and after daemonizing). */
    if (argv[3][0] == '/') {
        snprintf(ctl_path, sizeof ctl_path, "%s", argv[3]);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            perror("getcwd");
            return 1;
        }
        if (snprintf(ctl_path, sizeof ctl_path, "%s/%s", cwd, argv[3]) >= (int)sizeof ctl_path) {
            fprintf(stderr, "control path too long\n");
            return 1;
        }
    }
    char mnt[PATH_MAX];
    size_t ml;
    if (realpath(argv[2], mnt) && (ml = strlen(mnt)) &&
        (!strncmp(ctl_path, mnt, ml) && (ctl_path[ml] == '/' || mnt[ml - 1] == '/'))) {
        fprintf(stderr, "faultfs: the control file must be outside the mountpoint\n");
        return 2;
    }
    snprintf(status_path, sizeof status_path, "%s.status", ctl_path);
    snprintf(status_tmp, sizeof status_tmp, "%s.status.tmp", ctl_path);
    int cfd = open(ctl_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (cfd >= 0) {                      /* create it as "ok" if it does not exist */
        (void)!write(cfd, "ok\n", 3);
        close(cfd);
    } else if (errno != EEXIST) {
        perror(ctl_path);
        return 1;
    }
    refresh_control();                   /* the starting mode is whatever the file says */

    umask(0);   /* the kernel already applied the caller's umask to create/mkdir modes */

    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    fuse_opt_add_arg(&args, argv[0]);
    fuse_opt_add_arg(&args, argv[2]);
    fuse_opt_add_arg(&args, "-odefault_permissions,fsname=faultfs,subtype=faultfs,auto_unmount,"
                            "attr_timeout=0,entry_timeout=0,negative_timeout=0,max_threads=16,max_idle_threads=8");
    if (geteuid() == 0)
        fuse_opt_add_arg(&args, "-oallow_other");
    for (int i = 4; i < argc; i++)
        fuse_opt_add_arg(&args, argv[i]);
    if (fuse_opt_parse(&args, &opts, ff_opts, NULL) == -1)
        return 2;

    /* A parent may have spawned us with signals blocked (Foundation's Process inherits the
       spawning thread's mask): unblock them, or SIGTERM would never unmount. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int r = fuse_main(args.argc, args.argv, &ff_ops, NULL);
    fuse_opt_free_args(&args);
    return r;
}
