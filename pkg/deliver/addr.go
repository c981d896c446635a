package deliver

import (
	"net"
	"strconv"
)

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func splitHostPort(s string) (string, string, error) { return net.SplitHostPort(s) }
