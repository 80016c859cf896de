package h1

import (
	"bytes"
	"errors"
	"io"
)

// Reader buffers a connection's input and cuts it into message heads and
// bodies. It is not safe for concurrent use: one goroutine reads a
// connection at a time.
type Reader struct {
	src  io.Reader
	buf  []byte
	r, w int   // buf[r:w] is read but not consumed
	size int   // the buffer's usual size, to shrink back to after a large head
	err  error // sticky error from src, returned once the buffer is empty
}

// NewReader returns a Reader over src with a buffer of size bytes.
func NewReader(src io.Reader, size int) *Reader {
	return &Reader{src: src, buf: make([]byte, size), size: size}
}

// Reset makes b read src from scratch, keeping its buffer.
func (b *Reader) Reset(src io.Reader) {
	b.src, b.r, b.w, b.err = src, 0, 0, nil
	if len(b.buf) > b.size {
		b.buf = make([]byte, b.size)
	}
}

// Buffered is the number of bytes read from the source and not consumed.
func (b *Reader) Buffered() int { return b.w - b.r }

// Peek returns the buffered bytes without consuming them; they are valid
// until the next read.
func (b *Reader) Peek() []byte { return b.buf[b.r:b.w] }

// ClearError forgets an error the source returned, e.g. a read deadline
// set on purpose to interrupt a read, so that reading can go on.
func (b *Reader) ClearError() { b.err = nil }

// Fill reads from the source once, into the free end of the buffer, and
// returns the error of that read. The buffer must not be full.
func (b *Reader) Fill() error {
	if b.err != nil {
		return b.err
	}
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
	if b.w == len(b.buf) {
		if b.r == 0 {
			return errors.New("h1: buffer full")
		}
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	n, err := b.src.Read(b.buf[b.w:])
	b.w += n
	if err != nil {
		b.err = err
		if n > 0 {
			return nil
		}
	}
	return err
}

// ReadHead returns the next message head, through the CRLF of its empty
// line, as a string of its own, reading more from the source as needed.
// A head longer than max is ErrHeadTooLarge; a bare LF is ErrMalformed
// as soon as it is seen, so that such a head is refused at once rather
// than waited on. io.EOF means the source ended before any byte of a head.
func (b *Reader) ReadHead(max int) (string, error) {
	scanned := 0 // bytes of the head known to hold no terminator
	for {
		data := b.buf[b.r:b.w]
		for {
			i := bytes.IndexByte(data[scanned:], '\n')
			if i < 0 {
				scanned = len(data)
				break
			}
			i += scanned
			if i == 0 || data[i-1] != '\r' {
				return "", ErrMalformed
			}
			if i >= 3 && data[i-3] == '\r' && data[i-2] == '\n' {
				if i+1 > max {
					return "", ErrHeadTooLarge
				}
				head := string(data[:i+1])
				b.r += i + 1
				return head, nil
			}
			scanned = i + 1
		}
		if len(data) >= max {
			return "", ErrHeadTooLarge
		}
		if b.r == 0 && b.w == len(b.buf) {
			// Grow, up to a little over max so that a head of max bytes
			// fits.
			nb := make([]byte, min(2*len(b.buf), max+4))
			b.w = copy(nb, data)
			b.buf = nb
		}
		if err := b.Fill(); err != nil {
			if err == io.EOF && len(b.buf[b.r:b.w]) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// Read reads body bytes: what is buffered first, then from the source
// directly when p is at least as large as the buffer (no copy).
func (b *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) >= len(b.buf) {
			n, err := b.src.Read(p)
			if err != nil {
				b.err = err
			}
			return n, err
		}
		if err := b.Fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// readLine returns the next line without its CRLF, at most max bytes; the
// line is valid until the next read. A bare LF is ErrMalformed.
func (b *Reader) readLine(max int) ([]byte, error) {
	scanned := 0
	for {
		data := b.buf[b.r:b.w]
		if i := bytes.IndexByte(data[scanned:], '\n'); i >= 0 {
			i += scanned
			if i == 0 || data[i-1] != '\r' {
				return nil, ErrBadChunk
			}
			b.r += i + 1
			return data[:i-1], nil
		}
		scanned = len(data)
		if len(data) >= max || len(data) == len(b.buf) {
			return nil, ErrBadChunk
		}
		if err := b.Fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// LimitedBody is a body of a known length read from a Reader.
type LimitedBody struct {
	R *Reader
	N int64 // bytes left
}

// Read returns io.EOF with the last bytes, so that whoever reads the body
// knows at once that the connection is free for the next message.
func (l *LimitedBody) Read(p []byte) (int, error) {
	if l.N <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.N {
		p = p[:l.N]
	}
	n, err := l.R.Read(p)
	l.N -= int64(n)
	switch {
	case err == io.EOF && l.N > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && l.N == 0, err == io.EOF:
		err = io.EOF
	}
	return n, err
}
