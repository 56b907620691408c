module wasmgate.dev/e2e/kind/runc-caps

go 1.26
