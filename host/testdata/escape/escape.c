/*
 * escape.c: a guest that tries to leave its file-system mounts, for the
 * host's sandbox tests. Its one export, fsop, takes "OP ARG [ARG]" (fields
 * separated by single spaces) and outputs "ok", "ok DATA", or the name of
 * the errno the operation failed with (EPERM, ENOENT, ...).
 *
 * Build (from this directory; `make testdata` does it):
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all -I../../../sdk-guest/c -o escape.wasm escape.c
 */
#include "bulkhead.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case ENOTSUP: return "ENOTSUP";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    default: return "EOTHER";
    }
}

static int32_t fail(void) {
    bh_output_str(errname(errno));
    return BH_CODE_OK;
}

static int32_t ok(const char *data, size_t len) {
    bh_buf out = {0};
    bh_buf_append_str(&out, "ok");
    if (data != NULL) {
        bh_buf_append_str(&out, " ");
        bh_buf_append(&out, data, len);
    }
    bh_output(out.ptr, out.len);
    bh_buf_free(&out);
    return BH_CODE_OK;
}

/* done closes fd and outputs "ok" if the operation on it went well (good),
 * its errno otherwise. */
static int32_t done(int fd, bool good) {
    int e = errno;
    close(fd);
    if (!good) {
        errno = e;
        return fail();
    }
    return ok(NULL, 0);
}

static int32_t readfile(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail();
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return fail();
    }
    return ok(buf, (size_t)n);
}

static int32_t writefile(const char *path, int flags) {
    int fd = open(path, O_WRONLY | flags, 0644);
    if (fd < 0) return fail();
    return done(fd, write(fd, "escaped", 7) == 7);
}

static int32_t listdir(const char *path) {
    DIR *d = opendir(path);
    if (d == NULL) return fail();
    bh_buf out = {0};
    bh_buf_append_str(&out, "ok");
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        bh_buf_append_str(&out, " ");
        bh_buf_append_str(&out, de->d_name);
    }
    closedir(d);
    bh_output(out.ptr, out.len);
    bh_buf_free(&out);
    return BH_CODE_OK;
}

static int32_t statpath(const char *path, bool follow) {
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) return fail();
    const char *kind = S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : S_ISREG(st.st_mode) ? "file" : "other";
    return ok(kind, strlen(kind));
}

static int32_t touchfd(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail();
    return done(fd, futimens(fd, NULL) == 0);
}

static int32_t ftrunc(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail();
    return done(fd, ftruncate(fd, 0) == 0);
}

BH_EXPORT(fsop) int32_t fsop(void) {
    bh_buf in = bh_input();
    char *op = (char *)in.ptr, *a = "", *b = "";
    char *sp = strchr(op, ' ');
    if (sp != NULL) {
        *sp = 0;
        a = sp + 1;
        if ((sp = strchr(a, ' ')) != NULL) {
            *sp = 0;
            b = sp + 1;
        }
    }
    int32_t rc;
    errno = 0;
    if (strcmp(op, "read") == 0) rc = readfile(a);
    else if (strcmp(op, "write") == 0) rc = writefile(a, O_CREAT | O_TRUNC);
    else if (strcmp(op, "append") == 0) rc = writefile(a, O_APPEND);
    else if (strcmp(op, "create") == 0) rc = writefile(a, O_CREAT | O_EXCL);
    else if (strcmp(op, "list") == 0) rc = listdir(a);
    else if (strcmp(op, "stat") == 0) rc = statpath(a, true);
    else if (strcmp(op, "lstat") == 0) rc = statpath(a, false);
    else if (strcmp(op, "futimes") == 0) rc = touchfd(a);
    else if (strcmp(op, "ftruncate") == 0) rc = ftrunc(a);
    else if (strcmp(op, "truncate") == 0) rc = truncate(a, 0) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "utimes") == 0) rc = utimensat(AT_FDCWD, a, NULL, 0) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "mkdir") == 0) rc = mkdir(a, 0755) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "rmdir") == 0) rc = rmdir(a) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "unlink") == 0) rc = unlink(a) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "symlink") == 0) rc = symlink(a, b) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "link") == 0) rc = link(a, b) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "rename") == 0) rc = rename(a, b) == 0 ? ok(NULL, 0) : fail();
    else if (strcmp(op, "readlink") == 0) {
        char buf[4096];
        ssize_t n = readlink(a, buf, sizeof buf);
        rc = n < 0 ? fail() : ok(buf, (size_t)n);
    } else rc = bh_fail_permanent("unknown operation");
    bh_buf_free(&in);
    return rc;
}
