package proc

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPU is CPU time used, in user space and in the kernel.
type CPU struct{ User, Sys time.Duration }

// Sub returns c less d.
func (c CPU) Sub(d CPU) CPU { return CPU{c.User - d.User, c.Sys - d.Sys} }

// Add returns c plus d.
func (c CPU) Add(d CPU) CPU { return CPU{c.User + d.User, c.Sys + d.Sys} }

// CPU returns the CPU time used so far by every process in p's process
// group (nginx's workers included), or zero when /proc cannot be read.
func (p *Proc) CPU() CPU {
	pgid := strconv.Itoa(p.Cmd.Process.Pid)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return CPU{}
	}
	var user, sys int64
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid pgrp ... utime stime: fields 14 and 15,
		// counted after the command name, which may hold spaces.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 || f[2] != pgid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		user += u
		sys += s
	}
	return CPU{time.Duration(user) * time.Second / clockTicks, time.Duration(sys) * time.Second / clockTicks}
}
