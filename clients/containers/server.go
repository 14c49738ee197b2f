// The container image of the client suites (clients/run builds it with Go and pushes it as an
// OCI layout): listens on the port its first argument names, else on $PORT; /healthz answers
// 204; / answers with its command line, $GREETING and $SECRET as JSON, and logs the call.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

func main() {
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("box called:", r.Method, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"command":%q,"greeting":%q,"secret":%q}`,
			strings.Join(os.Args, " "), os.Getenv("GREETING"), os.Getenv("SECRET"))
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		panic(err)
	}
}
