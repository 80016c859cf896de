// Package syncbuf holds Buffer, a bytes.Buffer that many goroutines may
// write to while another reads it: where tests collect the output of a
// child process, a logger or a server and look at it as it grows.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a byte buffer safe for concurrent use. Its zero value is an
// empty buffer ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
