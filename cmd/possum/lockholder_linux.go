package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/possumstore/possum/storedir"
	"golang.org/x/sys/unix"
)

// lockHolder finds the process holding the flock(2) on the store's LOCK
// file in /proc/locks, where Linux lists every lock with its process id and
// the device and inode of its file. It only reads. A store without a LOCK
// file is held by no one.
func lockHolder(dir string) (h holder, held bool, err error) {
	fi, err := os.Stat(filepath.Join(dir, storedir.LockFile))
	if errors.Is(err, os.ErrNotExist) {
		return holder{}, false, nil
	}
	if err != nil {
		return holder{}, false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return holder{}, false, errors.New("no device and inode for LOCK")
	}
	dev := uint64(st.Dev) // uint32 on some architectures
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), st.Ino)
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return holder{}, false, err
	}
	defer locks.Close()
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		// "1: FLOCK  ADVISORY  WRITE 8843 fe:00:9977883 0 EOF"; a process
		// waiting for a lock has "->" after the number.
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != file {
			continue
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil {
			continue
		}
		return holder{pid: pid, exclusive: f[3] == "WRITE"}, true, nil
	}
	return holder{}, false, sc.Err()
}
