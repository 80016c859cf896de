package h1

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
)

// Limits of the chunked coding: a chunk line (size and extensions) and
// the whole trailer section. Extensions carry nothing the gateway uses; the
// limit stops a client from making the gateway read unbounded non-data.
const (
	maxChunkLine    = 4 << 10
	maxTrailerBytes = 16 << 10
)

// ChunkedBody reads a chunked body (RFC 9112 §7.1) from a Reader and, at
// its end, the trailer section into *Trailer (created if nil), as net/http
// fills a Request's or Response's Trailer. Chunk sizes must be hex digits
// only (no sign, no 0x, no spaces but before an extension), every line
// must end in CRLF, and chunk data must be followed by CRLF: anything else
// is ErrBadChunk.
type ChunkedBody struct {
	R       *Reader
	Trailer *http.Header

	n    uint64 // bytes left in the current chunk
	data bool   // inside a chunk's data (n may be 0 at its end)
	done bool
	err  error
}

func (c *ChunkedBody) Read(p []byte) (int, error) {
	for c.err == nil {
		if c.done {
			return 0, io.EOF
		}
		if c.n == 0 {
			if c.data {
				c.err = c.crlf()
				c.data = false
				continue
			}
			c.err = c.chunkLine()
			continue
		}
		if uint64(len(p)) > c.n {
			p = p[:c.n]
		}
		n, err := c.R.Read(p)
		c.n -= uint64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		c.err = err
		if c.n == 0 && err == nil && bytes.HasPrefix(c.R.Peek(), lastChunk) {
			// The chunk's CRLF and a last chunk without trailers are
			// here already (the usual end): consume them, so that the
			// last bytes come with io.EOF and the connection is known
			// free at once.
			c.R.r += len(lastChunk)
			c.data, c.done = false, true
		}
		if n > 0 {
			if c.done && c.err == nil {
				return n, io.EOF
			}
			return n, nil
		}
	}
	return 0, c.err
}

// lastChunk is a chunk's CRLF followed by a last chunk without extensions
// or trailers.
var lastChunk = []byte("\r\n0\r\n\r\n")

// crlf consumes the CRLF after a chunk's data.
func (c *ChunkedBody) crlf() error {
	line, err := c.R.readLine(2 + 2)
	if err != nil {
		return err
	}
	if len(line) != 0 {
		return ErrBadChunk
	}
	return nil
}

// chunkLine reads a chunk-size line; after the last chunk's, the trailer
// section.
func (c *ChunkedBody) chunkLine() error {
	line, err := c.R.readLine(maxChunkLine)
	if err != nil {
		return err
	}
	size := line
	for i, b := range line {
		if b == ';' || b == ' ' || b == '\t' {
			size = line[:i]
			if !validChunkExt(line[i:]) {
				return ErrBadChunk
			}
			break
		}
	}
	if len(size) == 0 || len(size) > 16 {
		return ErrBadChunk
	}
	var n uint64
	for _, b := range size {
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			return ErrBadChunk
		}
		n = n<<4 | uint64(d)
	}
	if n > 1<<62 {
		return ErrBadChunk
	}
	if n > 0 {
		c.n, c.data = n, true
		return nil
	}
	c.done = true
	return c.trailer()
}

// validChunkExt checks *( BWS ";" BWS name [ BWS "=" BWS value ] ), the
// value a token or a quoted string, loosely: tokens and quoted strings of
// visible characters.
func validChunkExt(s []byte) bool {
	i := 0
	bws := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	token := func() bool {
		j := i
		for i < len(s) && tchar[s[i]] {
			i++
		}
		return i > j
	}
	for {
		bws()
		if i == len(s) {
			return i > 0 && s[i-1] != ' ' && s[i-1] != '\t'
		}
		if s[i] != ';' {
			return false
		}
		i++
		bws()
		if !token() {
			return false
		}
		bws()
		if i < len(s) && s[i] == '=' {
			i++
			bws()
			if i < len(s) && s[i] == '"' {
				i++
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' {
						i++
					}
					if i < len(s) && !fieldVchar(s[i]) {
						return false
					}
					i++
				}
				if i >= len(s) {
					return false
				}
				i++
			} else if !token() {
				return false
			}
		}
	}
}

// trailer reads the trailer section, through its empty line.
func (c *ChunkedBody) trailer() error {
	var lines []byte
	for {
		line, err := c.R.readLine(maxTrailerBytes)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if len(lines)+len(line) > maxTrailerBytes {
			return ErrHeadTooLarge
		}
		lines = append(append(lines, line...), '\r', '\n')
	}
	if len(lines) == 0 {
		return nil
	}
	h := make(http.Header)
	if err := parseFields(string(lines)+"\r\n", h); err != nil {
		return err
	}
	if c.Trailer == nil {
		return nil
	}
	if *c.Trailer == nil {
		*c.Trailer = make(http.Header, len(h))
	}
	for k, v := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Trailer", "Host":
			continue // framing and routing are not for trailers (RFC 9110 §6.5.1)
		}
		(*c.Trailer)[k] = v
	}
	return nil
}

// AppendChunkHeader appends the size line of a chunk of n > 0 bytes.
func AppendChunkHeader(dst []byte, n int) []byte {
	dst = strconv.AppendInt(dst, int64(n), 16)
	return append(dst, '\r', '\n')
}

// AppendLastChunk appends the last chunk, the trailer fields and the empty
// line that end a chunked body.
func AppendLastChunk(dst []byte, trailer http.Header) []byte {
	dst = append(dst, "0\r\n"...)
	dst = AppendFields(dst, trailer)
	return append(dst, '\r', '\n')
}
