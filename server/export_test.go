package server

// StreamBytes returns the bytes of event lines the following streams hold
// now and at most since the server was made, and how many streams were
// ended as slow readers.
func (srv *Server) StreamBytes() (used, peak, slowReaders int64) { return srv.pool.stats() }

// Reads returns how many reads (GET and POST /read) are running.
func (srv *Server) Reads() int { return int(srv.reads.Load()) }
