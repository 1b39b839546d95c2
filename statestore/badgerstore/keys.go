package badgerstore

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Key layout. Strings are checked to hold no NUL byte, so NUL separates them.
//
//	r<run>                      run (JSON)
//	t<created ns><run>          every run, in creation order
//	u<created ns><run>          unfinished runs
//	f<finished ns><run>         finished runs, for retention
//	s<status>\0<created ns><run> runs by status, in creation order
//	n<run>\0<node>              node result (JSON)
//	a<run>\0<node>              last attempt started (JSON)
//	c<run>\0<node>\0<seq>       checkpoint: created ns (8 bytes) + data
//	C<run>\0<node>              newest checkpoint seq (8 bytes)
//	k<plugin>\0<key>            plugin state value
//	d<id>                       dead letter (JSON)
//	D<run>\0<id>                dead letters of a run
//	q<run>\0<node>              task: its order seq (8 bytes)
//	o<seq>                      task order: first attempt (8 bytes), run\0node
//	mformat                     layout version
//	mqueue                      open epoch of the queue (8 bytes)
const (
	pRun        = 'r'
	pCreated    = 't'
	pUnfinished = 'u'
	pFinished   = 'f'
	pStatus     = 's'
	pResult     = 'n'
	pAttempt    = 'a'
	pCheckpoint = 'c'
	pCPHead     = 'C'
	pState      = 'k'
	pDead       = 'd'
	pDeadByRun  = 'D'
	pTask       = 'q'
	pOrder      = 'o'
)

var (
	keyFormat = []byte("mformat")
	keyEpoch  = []byte("mqueue")
)

// formatVersion is the layout version. Version 1 had no status index; Open
// builds it and then moves the marker to 2.
const (
	formatVersion   = "2"
	formatUnindexed = "1"
)

func key(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// runPrefix is the prefix of every per-node key of a run under prefix.
func runPrefix(prefix byte, run string) []byte {
	return append(key(prefix, run), 0)
}

func timeKey(prefix byte, t time.Time, run string) []byte {
	k := make([]byte, 9, 9+len(run))
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], uint64(t.UnixNano()))
	return append(k, run...)
}

func timeKeyNS(prefix byte, ns int64, run string) []byte {
	return timeKey(prefix, time.Unix(0, ns), run)
}

// splitTimeKey returns the nanoseconds and run ID of a timeKey.
func splitTimeKey(k []byte) (int64, string) {
	return int64(binary.BigEndian.Uint64(k[1:9])), string(k[9:])
}

func checkpointKey(run, node string, seq uint64) []byte {
	k := append(checkpointPrefix(run, node), make([]byte, 8)...)
	binary.BigEndian.PutUint64(k[len(k)-8:], seq)
	return k
}

func checkpointPrefix(run, node string) []byte {
	return append(key(pCheckpoint, run, node), 0)
}

// statusPrefix is the prefix of the status index of st.
func statusPrefix(st statestore.RunStatus) []byte {
	return append(key(pStatus, string(st)), 0)
}

// statusKey is the status index entry of a run: its status, then the same
// creation-order key as t<created><run>.
func statusKey(st statestore.RunStatus, created time.Time, run string) []byte {
	return statusKeyNS(st, created.UnixNano(), run)
}

func statusKeyNS(st statestore.RunStatus, ns int64, run string) []byte {
	p := statusPrefix(st)
	k := make([]byte, len(p)+8, len(p)+8+len(run))
	copy(k, p)
	binary.BigEndian.PutUint64(k[len(p):], uint64(ns))
	return append(k, run...)
}

// splitStatusKey returns the status, nanoseconds and run ID of a statusKey.
func splitStatusKey(k []byte) (statestore.RunStatus, int64, string, bool) {
	i := bytes.IndexByte(k, 0)
	if len(k) < 1 || i < 0 || len(k) < i+9 {
		return "", 0, "", false
	}
	return statestore.RunStatus(k[1:i]), int64(binary.BigEndian.Uint64(k[i+1 : i+9])), string(k[i+9:]), true
}
