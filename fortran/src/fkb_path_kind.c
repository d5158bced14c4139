/* What kind of file a path names, for fkb_files.f90: Fortran's `inquire`
 * cannot tell a regular file from a FIFO or a device, and opening a FIFO
 * blocks until a writer comes. POSIX stat (following symbolic links). */
#include <sys/stat.h>

/* 0: a regular file, 1: nothing there (or not reachable), 2: a directory,
 * 3: anything else (FIFO, character or block device, socket). */
int fkb_path_kind(const char *path)
{
    struct stat info;
    if (stat(path, &info) != 0) return 1;
    if (S_ISREG(info.st_mode)) return 0;
    if (S_ISDIR(info.st_mode)) return 2;
    return 3;
}
