# free_ports N: N distinct free loopback ports, found with all N sockets
# open at once (one at a time, the kernel may hand a just-released port
# out again). Sourced by tests/run.sh, tests/fault/fault.sh, tests/lib.sh.
free_ports() {
	python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
