// Package jailfs is the file system a guest sees through an allowed path: a
// host directory mounted at a guest path, from which no guest operation
// reaches outside, whatever symbolic links, "..", renames or hard links it
// tries.
//
// # Use
//
// Open a mount per allowed path and give it to wazero:
//
//	j, err := jailfs.Open(hostDir, readOnly)
//	fsc = fsc.(sysfs.FSConfig).WithSysFSMount(j, guestPath)
//
// Close the FS once the module instance using it is closed. An FS is safe
// for concurrent use; a file it opens belongs to one instance, which uses
// it from one goroutine at a time.
//
// # The jail
//
// Every path is resolved by the mount's os.Root, opened once on the host
// directory: a symbolic link is followed only while it stays inside the
// mount, and ".." never climbs above it. Nothing is checked by name first
// and then done by name again: each operation is a single os.Root call, or
// works on a descriptor opened through one. Where an operation needs a
// look first (Unlink and Rmdir tell files from directories, O_NOFOLLOW),
// both steps resolve inside the root, so a race can only change which
// entry of the mount is affected.
//
// A guest cannot make a link that points out: Symlink refuses a target
// that is absolute or that, read lexically from the link's directory,
// leaves the mount; Rename and Link apply the same check to a symbolic
// link they move or copy. These checks keep the mount tidy for the host;
// the jail does not depend on them. A link that points out anyway (placed
// there by the host, or carried along with a renamed directory) is refused
// when followed.
//
// A read-only mount refuses every write: opening with write access,
// O_CREAT, O_TRUNC or O_APPEND, Mkdir, Rmdir, Unlink, Rename, Link,
// Symlink, Chmod, Utimens, and on an open file Truncate, Utimens and
// SetAppend(true). Links inside it resolve inside it, so no link leads a
// write to another mount.
//
// # Errors
//
// Methods return wazero's experimental sys.Errno. Leaving the mount, by
// following a link or by a link the guest tries to make, gives EPERM: the
// operation is not permitted on any file, whatever its permission bits,
// which is what EACCES would suggest. A write to a read-only mount gives
// EROFS. Other failures keep their system errno (ENOENT, EEXIST, ENOTDIR,
// EISDIR, ENOTEMPTY, ELOOP, EACCES, ...); a closed file gives EBADF.
// wazero itself refuses a rename or hard link between two mounts with
// ENOSYS before asking either (its errno set has no EXDEV), and a path
// that climbs above the mount lexically with EPERM.
package jailfs
