module wasmgate.dev/e2e/kind/pause

go 1.26
