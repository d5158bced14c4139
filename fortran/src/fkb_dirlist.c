/* The names in a folder, for fkb_dirlist.f90 (Fortran has no standard way
 * to list a directory). POSIX opendir/readdir; "." and ".." are skipped.
 * The Fortran side sorts the names, so the order of readdir does not matter. */
#include <dirent.h>
#include <string.h>

/* Open a folder; NULL if it is missing or unreadable. */
void *fkb_dir_open(const char *path)
{
    return (void *)opendir(path);
}

/* The next name: up to `cap` bytes copied to `buf` (not NUL-terminated), its
 * full length in `*len`. Returns 1 while there is an entry, 0 at the end. */
int fkb_dir_next(void *dir, char *buf, int cap, int *len)
{
    struct dirent *entry;
    size_t n;
    if (dir == NULL) return 0;
    while ((entry = readdir((DIR *)dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        n = strlen(entry->d_name);
        *len = (int)n;
        memcpy(buf, entry->d_name, n < (size_t)cap ? n : (size_t)cap);
        return 1;
    }
    return 0;
}

void fkb_dir_close(void *dir)
{
    if (dir != NULL) closedir((DIR *)dir);
}
