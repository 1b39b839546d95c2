package plugins

import (
	"os"
	"syscall"
)

// fileID tells apart two files with the same size and mtime: a file
// replaced by a rename has another inode, and any write moves the change
// time.
type fileID struct {
	ino       uint64
	ctimeSec  int64
	ctimeNano int64
}

func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{ino: st.Ino, ctimeSec: int64(st.Ctim.Sec), ctimeNano: int64(st.Ctim.Nsec)}
}
