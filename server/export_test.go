package server

// StreamBytes returns the bytes of event lines the following streams hold
// now and at most since the server was made, and how many streams were
// ended as slow readers.
func (srv *Server) StreamBytes() (used, peak, slowReaders int64) { return srv.pool.stats() }

// Reads returns how many reads (GET and POST /read) are running.
func (srv *Server) Reads() int { return int(srv.reads.Load()) }

// Streams returns how many streams (GET and POST /stream) are running.
func (srv *Server) Streams() int { return int(srv.streams.Load()) }

// Routes returns the method and path of every operation the server
// answers (docs/openapi.yaml describes each).
func Routes() [][2]string {
	out := make([][2]string, len(routes))
	for i, r := range routes {
		out[i] = [2]string{r.method, r.path}
	}
	return out
}
