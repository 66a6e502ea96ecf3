package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// The stream's metadata names possum's layout, so that a stream written by
// something else is told apart before anything is read from it or written
// to it.
const (
	metaLayout    = "possum_layout"
	layoutVersion = "1"
)

// streamConfig is the configuration of a new stream: every message kept
// for ever and never deleted (a message is an event; its sequence is the
// event's position), atomic batches allowed.
func streamConfig(name, prefix string, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               name,
		Description:        "possum event store",
		Subjects:           []string{prefix + ".>"},
		Retention:          jetstream.LimitsPolicy,
		MaxConsumers:       -1,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		MaxMsgSize:         -1,
		Discard:            jetstream.DiscardNew,
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowAtomicPublish: true,
		AllowDirect:        true,
		Metadata:           map[string]string{metaLayout: layoutVersion},
	}
}

// checkConfig returns an error naming the first setting of an existing
// stream that possum cannot work with, nil when there is none. replicas 0
// accepts any replica count.
func checkConfig(cfg jetstream.StreamConfig, prefix string, replicas int) error {
	wrong := func(setting string, got any, why string) error {
		return fmt.Errorf("cluster: stream %q exists with %s %v: %s", cfg.Name, setting, got, why)
	}
	switch {
	case !slices.Equal(cfg.Subjects, []string{prefix + ".>"}):
		return wrong("subjects", cfg.Subjects, fmt.Sprintf("possum needs exactly [%s.>] (another subject would let messages that are not events in)", prefix))
	case cfg.Retention != jetstream.LimitsPolicy:
		return wrong("retention", cfg.Retention, "possum needs limits retention (the others delete messages once consumed)")
	case cfg.MaxMsgs > 0, cfg.MaxBytes > 0, cfg.MaxMsgsPerSubject > 0:
		return wrong("max_msgs/max_bytes/max_msgs_per_subject", []int64{cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxMsgsPerSubject}, "possum needs no limits (a limit removes old events)")
	case cfg.MaxAge > 0:
		return wrong("max_age", cfg.MaxAge, "possum needs no age limit (it removes old events)")
	case !cfg.DenyDelete:
		return wrong("deny_delete", cfg.DenyDelete, "possum needs DenyDelete (a deleted message is a hole in the positions)")
	case !cfg.DenyPurge:
		return wrong("deny_purge", cfg.DenyPurge, "possum needs DenyPurge (a purge removes events)")
	case !cfg.AllowAtomicPublish:
		return wrong("allow_atomic", cfg.AllowAtomicPublish, "possum needs AllowAtomicPublish (an append is one atomic batch)")
	case cfg.AllowRollup:
		return wrong("allow_rollup_hdrs", cfg.AllowRollup, "possum needs rollups off (a rollup purges events)")
	case cfg.AllowMsgTTL:
		return wrong("allow_msg_ttl", cfg.AllowMsgTTL, "possum needs message TTLs off (a TTL removes events)")
	case cfg.AllowMsgCounter:
		return wrong("allow_msg_counter", cfg.AllowMsgCounter, "possum needs counters off (a counter stream rewrites messages)")
	case cfg.AllowMsgSchedules:
		return wrong("allow_msg_schedules", cfg.AllowMsgSchedules, "possum needs schedules off")
	case cfg.Mirror != nil || len(cfg.Sources) > 0:
		return wrong("mirror/sources", "set", "possum needs a stream of its own (a mirror or source writes messages possum did not)")
	case cfg.SubjectTransform != nil:
		return wrong("subject_transform", "set", "possum needs subjects kept as published")
	case cfg.Sealed:
		return wrong("sealed", cfg.Sealed, "a sealed stream takes no appends")
	case cfg.NoAck:
		return wrong("no_ack", cfg.NoAck, "possum needs publish acknowledgements")
	case cfg.Storage != jetstream.FileStorage:
		return wrong("storage", cfg.Storage, "possum needs file storage (memory storage loses every event on a restart)")
	case cfg.PersistMode != jetstream.DefaultPersistMode:
		return wrong("persist_mode", cfg.PersistMode, "possum needs the default persist mode (async acknowledges before writing)")
	case cfg.FirstSeq > 1:
		return wrong("first_seq", cfg.FirstSeq, "positions start at 1")
	case replicas > 0 && cfg.Replicas != replicas:
		return wrong("replicas", cfg.Replicas, fmt.Sprintf("this node was asked for %d", replicas))
	}
	return nil
}

// openStream creates the stream, or checks that the existing one is
// configured for possum and holds possum's layout. It writes nothing to a
// stream it refuses. A stream that exists empty, configured right but
// without possum's metadata (made by an operator, say), is adopted: the
// metadata is added.
func openStream(ctx context.Context, js jetstream.JetStream, name, prefix string, replicas int) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, streamConfig(name, prefix, max(replicas, 1)))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another node created it meanwhile: check it as any other.
			st, err = js.Stream(ctx, name)
		} else if err == nil {
			return st, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %q: %w", name, err)
	}
	info := st.CachedInfo()
	if err := checkConfig(info.Config, prefix, replicas); err != nil {
		return nil, err
	}
	state := info.State
	switch v, ok := info.Config.Metadata[metaLayout]; {
	case ok && v != layoutVersion:
		return nil, fmt.Errorf("cluster: stream %q holds possum layout %q, this possum reads layout %q", name, v, layoutVersion)
	case !ok && state.LastSeq > 0:
		return nil, fmt.Errorf("cluster: stream %q holds %d messages and was not made by possum (no %s in its metadata): refusing it", name, state.Msgs, metaLayout)
	case !ok:
		cfg := info.Config
		cfg.Metadata = map[string]string{metaLayout: layoutVersion}
		for k, v := range info.Config.Metadata {
			if !strings.HasPrefix(k, "_nats.") { // the server's own, set by the server
				cfg.Metadata[k] = v
			}
		}
		if st, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("cluster: stream %q: adding %s to its metadata: %w", name, metaLayout, err)
		}
	}
	if state.LastSeq == 0 {
		return st, nil
	}
	if state.FirstSeq != 1 || state.NumDeleted > 0 || state.Msgs != state.LastSeq {
		return nil, fmt.Errorf("cluster: stream %q: positions 1..%d hold %d messages (first %d): a hole in the positions", name, state.LastSeq, state.Msgs, state.FirstSeq)
	}
	// The first and the last message say whether possum wrote them; the
	// replica checks every other one as it applies it.
	for _, seq := range []uint64{1, state.LastSeq} {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("cluster: stream %q: reading message %d: %w", name, seq, err)
		}
		if _, _, err := decodeEvent(prefix, m.Subject, m.Header, m.Data); err != nil {
			return nil, fmt.Errorf("cluster: stream %q is not a possum store: message %d: %w", name, seq, err)
		}
	}
	return st, nil
}
