// Package supervisor runs a Shoal system on one machine from a manifest
// (shoal.yaml): it builds what needs building, starts several instances of
// each service, health-checks them, restarts the ones that die (with
// backoff, reporting crash loops), scales and rolls them, and registers
// programs that do not use the SDK in gossip discovery on their behalf. A
// control API on loopback lets the shoal CLI (ps, scale, restart, kill, logs,
// down) reach a running supervisor.
//
// # Running
//
// [New] takes a [Manifest] (as manifest.Load decodes and checks it);
// [Supervisor.Run] then
//
//   - writes <dir>/.shoal/state.json (pid, control API address, gossip
//     seed, a secret token), refusing to start if a live supervisor owns it;
//   - opens the system's keys, creating them on the first run (keys.go):
//     the CA in <dir>/.shoal/identity (package identity; its name is the
//     manifest's, as manifest.SystemName makes it a DNS label) and the
//     gossip keyring in <dir>/.shoal/gossip.key (0600; SHOAL_GOSSIP_KEY in
//     shoal up's environment wins); every minute it keeps the CA current
//     (identity.Authority.Maintain) and renews the certificates of running
//     processes that are due;
//   - starts its own gossip member, the seed every instance is given, with
//     the keyring: a process without it can neither join nor be heard;
//   - builds each distinct build: package once into <dir>/.shoal/bin;
//   - binds each process's TCP socket itself (its fixed port, or one the
//     kernel picks) and hands it over as an inherited descriptor
//     (SHOAL_LISTEN_FD, see package handoff), so its address is known
//     before it starts and nothing else can take it; a program that ignores
//     the descriptor may bind PORT itself if it sets SO_REUSEADDR;
//   - starts every instance with SHOAL_LISTEN_FD, PORT, SHOAL_ADDR,
//     SHOAL_NAME, SHOAL_INSTANCE, SHOAL_SEEDS, SHOAL_GOSSIP_ADDR,
//     SHOAL_GOSSIP_KEY, SHOAL_DRAIN_TIMEOUT and SHOAL_DATA_DIR in its
//     environment; a certificate of its service issued for the process
//     (SHOAL_IDENTITY_CERT, _KEY, _BUNDLE; removed when the process ends),
//     unless the manifest marks the service plaintext: true; the
//     manifest's authorization: as SHOAL_POLICY and the plaintext services
//     as SHOAL_PLAINTEXT_SERVICES; for an SDK program, SHOAL_ADMIN_ADDR, a
//     loopback port reserved for the process's admin listener; and the
//     OpenTelemetry variables of the collector below. Each runs in its own
//     process group and with a parent-death signal, so no instance
//     outlives a killed supervisor;
//   - polls each instance's health path until it answers 200 (only then is
//     it serving): an SDK program's on its admin listener, another
//     program's on its own port, over mutual TLS with the supervisor's own
//     certificate (service shoal-supervisor) unless it is plaintext; then
//     prints a status table, and streams the instances' output prefixed
//     "service/index | ";
//   - restarts an instance that exits unasked after 100 ms, doubling to
//     10 s (reset once it has served 30 s); 5 exits within a minute is
//     reported as a crash loop and retried every 10 s. On a fixed port the
//     socket stays open for a restart due within a second, so callers'
//     connections wait for the new process instead of being refused (a
//     front door's clients may have nowhere else to go); a client that
//     fails over between instances waits that long instead;
//   - when its context ends or a down request arrives, stops every instance
//     gracefully (SIGTERM, then SIGKILL to the process group after the drain
//     timeout plus 2 s), releases its lock and then removes the state file,
//     so a new shoal up may start as soon as `shoal down` returns.
//
// Output to Options.Out goes through a bounded queue written by one
// goroutine: if nobody reads it (a pager, Ctrl-S), lines are dropped and
// counted ("(N lines dropped ...)") rather than stalling instances or the
// supervisor; the log buffers behind `shoal logs` keep every line.
//
// A program registered by the supervisor (register: supervisor, the default
// for command:) gets a gossip member run for it inside the supervisor once
// healthy; when the instance is stopped the member advertises draining
// first, the program gets SIGTERM, then the member leaves.
//
// # Control
//
// [FindRunning] reads the state file and returns a [Remote] whose methods
// (PS, Scale, Restart, Kill, Logs, Down) call the control API: HTTP/JSON on
// 127.0.0.1, authenticated by the token from the state file (readable only
// by its owner), with errors as {"error":{"code","message"}}. Every call is
// bounded in time (ps, kill, logs: 10 s; scale, restart: 10 min; down: the
// stop timeout the supervisor records); a live supervisor that does not
// answer is reported as such ([NoAnswerError]), not as absent. Scale and
// Restart return once the change is done: new instances serving, removed
// ones stopped. A rolling restart starts each replacement and waits until it
// serves before stopping the old instance. On a fixed port the replacement
// of an SDK program is handed the old process's socket and both accept from
// it until the old one has drained; a program that binds the port itself,
// or one registered by the supervisor, is stopped first.
//
// # What it collects
//
// For the dashboard (Options.Dashboard; the dashboard package), a running
// supervisor also collects, in bounded memory (collect.go):
//
//   - spans: an OTLP/HTTP receiver (protobuf, plain or gzip) on loopback.
//     Every instance gets OTEL_EXPORTER_OTLP_ENDPOINT (and _TRACES_ENDPOINT,
//     _PROTOCOL=http/protobuf), OTEL_SERVICE_NAME and
//     OTEL_RESOURCE_ATTRIBUTES=service.instance.id=<SHOAL_INSTANCE>, unless
//     its manifest entry sets them itself; the URL is in the state file too.
//     The receiver stores only what bears a token (otlpauth.go): each
//     instance gets its own in OTEL_EXPORTER_OTLP_TRACES_HEADERS, good for
//     its own service's and instance's spans only (not given when the
//     manifest sends its spans elsewhere); the state file holds one for
//     any sender.
//     The store keeps the last 500 traces, the 50 slowest and the last 200
//     failed ones of the last 10 minutes, at most 2,000 spans per trace and
//     64 MiB in all; spans beyond that are dropped and counted (the
//     exporter is told, in the OTLP partial-success answer).
//   - metrics: every 2 s it scrapes each SDK instance's /metrics (on its
//     admin listener)
//     (protobuf, decoding only the families it shows) into rolling
//     windows: rates, error ratios and p50/p99 from the histograms over the
//     last 10 s, per instance, per service and per caller→dependency, and 5
//     minutes of points per service. It is a dashboard, not a TSDB.
//   - a Prometheus file-SD targets file, <dir>/.shoal/prometheus/targets.json
//     (TargetsFile), rewritten atomically whenever the set of instances
//     that serve changes and emptied when the supervisor stops. Point
//     file_sd_configs at it (see the README for a scrape config).
//   - an event feed (the last 1,000): instances ready, exited, unhealthy,
//     healthy again, stopped; signals, scale and rolling restarts; callers'
//     breakers opening and closing and ejections refused (from the scraped
//     client metrics); gateway route reloads (from the gateways' logs);
//     chaos actions.
//
// # Chaos
//
// [Supervisor.Chaos] and [Remote.Chaos] act on an instance for the chaos
// monkey and experiments (packages chaos/monkey, chaos/experiment): kill,
// stop for a while, slow for a while, or a dry run of one, each an event
// naming who asked. The supervisor undoes stops and slows itself when
// their time is up or the instance is asked to stop. It also keeps the
// operator's fault key (package chaos) in <dir>/.shoal/chaos.key and gives
// every instance its public half in SHOAL_FAULT_KEY.
//
// # Several hosts
//
// [Options.Host] ([HostOptions]) makes the supervisor one of several, one
// per host, of a system that spans them (`shoal up --bind IP --join
// HOST:PORT --only SERVICES`): instances listen and gossip on the host's
// address and advertise it, the supervisor's gossip member joins the other
// hosts', it runs only the services named, and it opens the system's keys
// from a copy (never making its own when it joins). It serves a peer API
// over mutual TLS, to the system's supervisors only, through which ps
// lists every host's instances with a HOST column ([Remote.PSHosts]).
//
// Logs can be filtered by trace ID ([LogFilter]; `shoal logs --trace`): a
// JSON line whose trace_id field is the ID, or any other line that
// contains it.
package supervisor
