// Package client is the Go client of usersd: one channel to every replica
// behind a target, balancing calls round-robin across them.
//
// Dial gives every call these defaults:
//
//   - Round-robin over every address the target resolves to, each with its
//     own connection, skipping replicas whose grpc.health.v1 Watch reports
//     NOT_SERVING (a replica in its shutdown delay gets no new calls).
//   - Retries on UNAVAILABLE, up to 4 attempts with exponential backoff
//     (50ms doubling to 1s, jittered), for the idempotent methods only:
//     GetUser, ListUsers and BatchGetUsers of users.v1 and users.v2, and
//     CreateUser when it carries a request id (request_id, or the
//     idempotency-key metadata). UpdateUser, DeleteUser, UndeleteUser and
//     CreateUser without a request id are never retried.
//   - A deadline of DefaultTimeout on calls whose context has none
//     (WithTimeout), which bounds the retries too.
//   - Keepalive pings every 30s while calls are in flight, as often as the
//     server allows.
//   - OpenTelemetry client spans, with the W3C trace context sent to the
//     server; no tracing unless WithTracerProvider is given.
//   - Plaintext (WithTLS or WithTransportCredentials to change it).
//
// # Targets
//
// "dns:///usersd-headless.ns.svc.cluster.local:9090" uses gRPC's DNS
// resolver. Point it at a headless Service (clusterIP: None): its name
// resolves to every ready pod's IP, so calls spread over the pods. A
// ClusterIP Service resolves to one virtual IP instead, and each client then
// sticks to the pod its connection landed on. The resolver re-resolves when
// a connection fails or the server closes it (usersd closes connections
// after --grpc-max-connection-age), so new pods get traffic within that
// age; it does not watch for new pods otherwise. Use it inside Kubernetes
// by default, and outside it with any DNS name that lists the replicas.
//
// "kubernetes:///usersd.ns:9090" (also service.ns:portname) watches the
// Service's EndpointSlices through the Kubernetes API, so pods that come and
// go are seen at once, with no DNS caching. It works only in a pod whose
// service account may list and watch endpointslices in that namespace.
// Use it when scaling events must reach clients faster than the connection
// age.
//
// "static:///127.0.0.2:9090,127.0.0.3:9090" is a fixed list of addresses,
// for tests and simple setups without service discovery.
//
// Any other target goes to grpc.NewClient as is: "host:port" is
// "dns:///host:port".
//
// # TLS
//
// Connections are plaintext unless WithTLS is given. TLSFiles builds its
// configuration from PEM files: the CA that signs the servers' certificates
// (the system's roots if none), and for servers that require mutual TLS a
// client certificate and key:
//
//	tlsConfig, err := client.TLSFiles{
//		CAFile:   "/etc/usersd/tls/ca.crt",
//		CertFile: "/etc/usersd/tls/tls.crt",
//		KeyFile:  "/etc/usersd/tls/tls.key",
//	}.Config()
//	if err != nil {
//		return err
//	}
//	conn, err := client.Dial(ctx, "dns:///usersd-headless.ns.svc.cluster.local:9090", client.WithTLS(tlsConfig))
//
// The client certificate files are read again when they change (checked at
// most once a second, when a connection is made), so a rotated certificate
// is used by new connections without a restart; files that fail to load,
// such as a certificate whose new key is not written yet, leave the last
// good certificate in use and go to TLSFiles.OnReloadError. The CA file is
// read once.
//
// The servers' certificates must carry the host of the target: the DNS name
// for "dns:///" targets (for a headless Service, its name, e.g.
// usersd-headless.ns.svc.cluster.local), "usersd.ns" for
// "kubernetes:///usersd.ns:9090", and each address for "static:///" lists.
// TLSFiles.ServerName names one the certificates carry instead.
package client
