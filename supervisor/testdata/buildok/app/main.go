// Command app is built by the supervisor's build test: it answers 200 on
// $PORT and echoes its first argument.
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	fmt.Println("app started with", os.Args[1:])
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, os.Args[1:]) })
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
