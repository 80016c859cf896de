package statuswriter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		handle func(w *Writer)
		status int
		bytes  int64
	}{
		{"nothing written", func(w *Writer) {}, 200, 0},
		{"body only", func(w *Writer) { io.WriteString(w, "hello") }, 200, 5},
		{"status then body", func(w *Writer) { w.WriteHeader(404); io.WriteString(w, "no") }, 404, 2},
		{"early hints first", func(w *Writer) { w.WriteHeader(103); w.WriteHeader(201) }, 201, 0},
		{"second status ignored", func(w *Writer) { w.WriteHeader(500); w.WriteHeader(200) }, 500, 0},
		{"read from", func(w *Writer) { io.Copy(w, strings.NewReader("abc")) }, 200, 3},
		{"flush", func(w *Writer) { w.Flush() }, 200, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &Writer{ResponseWriter: httptest.NewRecorder()}
			tt.handle(w)
			if w.Status() != tt.status || w.Bytes != tt.bytes {
				t.Errorf("status %d, %d bytes; want %d, %d", w.Status(), w.Bytes, tt.status, tt.bytes)
			}
		})
	}
}

// A hijacked connection is recorded as 101, through http.ResponseController.
func TestWriterHijack(t *testing.T) {
	got := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &Writer{ResponseWriter: rw}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			got <- w.Status()
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		conn.Close()
		got <- w.Status()
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "test")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := <-got; code != http.StatusSwitchingProtocols {
		t.Errorf("status %d after a hijack, want 101", code)
	}
}

var _ interface {
	http.Flusher
	http.Hijacker
	io.ReaderFrom
} = (*Writer)(nil)
