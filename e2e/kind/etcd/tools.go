//go:build tools

// Package etcd pins etcd's server command.
package etcd

import _ "go.etcd.io/etcd/server/v3"
