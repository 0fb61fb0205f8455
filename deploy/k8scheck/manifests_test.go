package k8scheck

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	k8sDir    = "../k8s"
	configGo  = "../../cmd/usersd/config.go"
	appName   = "usersd"
	grpcSvc   = "usersd-grpc"
	httpSvc   = "usersd-http"
	gatewayNm = "usersd-gateway"
	migrateNm = "usersd-migrate"
	configMap = "usersd-config"
	dbSecret  = "usersd-db"
	// Shutdown defaults of cmd/usersd/config.go, used when the ConfigMap does
	// not set USERSD_SHUTDOWN_DELAY / USERSD_SHUTDOWN_TIMEOUT.
	defaultShutdownDelay   = 5 * time.Second
	defaultShutdownTimeout = 20 * time.Second
	graceMargin            = 5 * time.Second
)

// targets are the kustomizations built and checked.
var targets = []string{"base", "overlays/dev", "overlays/prod"}

// object is one rendered resource, decoded into its API type.
type object struct {
	kind, name, namespace string
	obj                   any
}

// decoders maps apiVersion/kind to a constructor of its Go type. A kind not
// listed fails the check: add it here, with its invariants, when it is new.
var decoders = map[string]func() any{
	"apps/v1/Deployment":                       func() any { return &appsv1.Deployment{} },
	"v1/Service":                               func() any { return &corev1.Service{} },
	"v1/ConfigMap":                             func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                func() any { return &corev1.Secret{} },
	"v1/ServiceAccount":                        func() any { return &corev1.ServiceAccount{} },
	"batch/v1/Job":                             func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":   func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
	"networking.k8s.io/v1/NetworkPolicy":       func() any { return &networkingv1.NetworkPolicy{} },
}

// decodeStrict decodes one manifest into its API type; unknown or duplicate
// fields fail. sigs.k8s.io/yaml.UnmarshalStrict rejects unknown fields and
// duplicate keys, but, being encoding/json underneath, matches field names
// case-insensitively (clusterIp would pass as clusterIP, while the API
// server rejects or drops it); so the JSON form is decoded again the way the
// API server does, case-sensitively, with sigs.k8s.io/json.
func decodeStrict(apiVersion, kind string, doc []byte) (any, error) {
	newObj, ok := decoders[apiVersion+"/"+kind]
	if !ok {
		return nil, fmt.Errorf("no Go type registered for %s %s", apiVersion, kind)
	}
	o := newObj()
	if err := yaml.UnmarshalStrict(doc, o); err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	strictErrs, err := kjson.UnmarshalStrict(js, newObj())
	if err != nil {
		return nil, err
	}
	if err := errors.Join(strictErrs...); err != nil {
		return nil, err
	}
	return o, nil
}

// build runs kustomize in-process on a target and decodes every resource.
func build(t *testing.T, target string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	dir, err := filepath.Abs(filepath.Join(k8sDir, target))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", target, err)
	}
	var objs []object
	for _, r := range rm.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s %s: %v", target, r.GetKind(), r.GetName(), err)
		}
		o, err := decodeStrict(r.GetApiVersion(), r.GetKind(), doc)
		if err != nil {
			t.Errorf("%s: %s %s: strict decode: %v", target, r.GetKind(), r.GetName(), err)
			continue
		}
		objs = append(objs, object{kind: r.GetKind(), name: r.GetName(), namespace: r.GetNamespace(), obj: o})
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no resources", target)
	}
	return objs
}

func find[T any](objs []object, kind, name string) *T {
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			if v, ok := o.obj.(*T); ok {
				return v
			}
		}
	}
	return nil
}

func all[T any](objs []object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.obj.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// serviceFlags reads the flag names of usersd from cmd/usersd/config.go and
// returns the environment variable names they accept (USERSD_<UPPER_SNAKE>).
func serviceFlags(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(configGo)
	if err != nil {
		t.Fatalf("reading the service's flags: %v", err)
	}
	re := regexp.MustCompile(`fs\.\w*Var\([^"\n]*?"([a-z0-9][a-z0-9-]*)"`)
	env := map[string]bool{}
	for _, m := range re.FindAllSubmatch(src, -1) {
		env["USERSD_"+strings.ToUpper(strings.ReplaceAll(string(m[1]), "-", "_"))] = true
	}
	// Sanity: the regexp must still find the flags this check relies on.
	for _, want := range []string{"USERSD_DATABASE_URL", "USERSD_MIGRATE", "USERSD_SHUTDOWN_DELAY", "USERSD_SHUTDOWN_TIMEOUT", "USERSD_GRPC_ADDR"} {
		if !env[want] {
			t.Fatalf("%s: found flags %v, not %s; has the flag declaration changed?", configGo, env, want)
		}
	}
	return env
}

func TestManifests(t *testing.T) {
	flags := serviceFlags(t)
	for _, target := range targets {
		t.Run(strings.ReplaceAll(target, "/", "_"), func(t *testing.T) {
			objs := build(t, target)
			checkNamespaces(t, objs)
			checkPodSecurity(t, objs)
			checkEnvNames(t, objs, flags)
			checkServer(t, objs)
			checkScaling(t, objs)
			checkServices(t, objs)
			checkGateway(t, objs)
			checkMigrateJob(t, objs)
			checkRBAC(t, objs)
			checkNetworkPolicy(t, objs)
			checkSecrets(t, target, objs)
		})
	}
}

// TestSecretExample decodes the example Secret, which no kustomization lists.
func TestSecretExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(k8sDir, "base", "secret-db.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := decodeStrict("v1", "Secret", doc)
	if err != nil {
		t.Fatalf("secret-db.example.yaml: %v", err)
	}
	s := o.(*corev1.Secret)
	if s.Name != dbSecret || s.StringData["USERSD_DATABASE_URL"] == "" {
		t.Errorf("secret-db.example.yaml: want Secret %s with stringData.USERSD_DATABASE_URL", dbSecret)
	}
}

// TestStrictDecodeRejectsUnknownFields proves the decoding is strict.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	for name, spec := range map[string]string{
		"unknown field":   "  clusterIP: None\n  headless: true\n",
		"wrong case":      "  clusterIp: None\n",
		"duplicate field": "  clusterIP: None\n  clusterIP: 10.0.0.1\n",
		"wrong type":      "  ports: [{port: http}]\n",
	} {
		doc := []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n" + spec)
		if _, err := decodeStrict("v1", "Service", doc); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		}
	}
	if _, err := decodeStrict("v1", "Service", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: None\n")); err != nil {
		t.Errorf("a valid Service: %v", err)
	}
}

func checkNamespaces(t *testing.T, objs []object) {
	ns := objs[0].namespace
	if ns == "" {
		t.Errorf("%s %s: no namespace", objs[0].kind, objs[0].name)
	}
	for _, o := range objs {
		if o.namespace != ns {
			t.Errorf("%s %s: namespace %q, others %q", o.kind, o.name, o.namespace, ns)
		}
	}
}

// podTemplates are the pod templates of every workload.
func podTemplates(objs []object) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range all[appsv1.Deployment](objs) {
		out["Deployment "+d.Name] = &d.Spec.Template
	}
	for _, j := range all[batchv1.Job](objs) {
		out["Job "+j.Name] = &j.Spec.Template
	}
	return out
}

func checkPodSecurity(t *testing.T, objs []object) {
	for wl, tpl := range podTemplates(objs) {
		ps := tpl.Spec.SecurityContext
		if ps == nil {
			ps = &corev1.PodSecurityContext{}
		}
		if ps.RunAsUser != nil && *ps.RunAsUser == 0 {
			t.Errorf("%s: pod runAsUser 0", wl)
		}
		cs := slices.Concat(tpl.Spec.InitContainers, tpl.Spec.Containers)
		if len(cs) == 0 {
			t.Errorf("%s: no containers", wl)
		}
		for _, c := range cs {
			where := wl + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			nonRoot := ps.RunAsNonRoot
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot not true", where)
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				t.Errorf("%s: runAsUser 0", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem not true", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation not false", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", where)
			}
			seccomp := ps.SeccompProfile
			if sc.SeccompProfile != nil {
				seccomp = sc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile not RuntimeDefault", where)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					t.Errorf("%s: no %s request", where, r)
				}
			}
			if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
				t.Errorf("%s: no memory limit", where)
			}
		}
	}
}

// containerEnv is the environment a container gets: its env entries plus
// every key of the ConfigMaps and Secrets of its envFrom (later wins, as in
// Kubernetes: env overrides envFrom).
func containerEnv(t *testing.T, objs []object, where string, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := find[corev1.ConfigMap](objs, "ConfigMap", ef.ConfigMapRef.Name)
			if cm == nil {
				t.Errorf("%s: envFrom ConfigMap %s not in the build", where, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			if s := find[corev1.Secret](objs, "Secret", ef.SecretRef.Name); s != nil {
				for k := range s.StringData {
					env[ef.Prefix+k] = "(secret)"
				}
				for k := range s.Data {
					env[ef.Prefix+k] = "(secret)"
				}
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if vf := e.ValueFrom; vf != nil && vf.ConfigMapKeyRef != nil {
			cm := find[corev1.ConfigMap](objs, "ConfigMap", vf.ConfigMapKeyRef.Name)
			if cm == nil {
				t.Errorf("%s: env %s: ConfigMap %s not in the build", where, e.Name, vf.ConfigMapKeyRef.Name)
				continue
			}
			v, ok := cm.Data[vf.ConfigMapKeyRef.Key]
			if !ok && (vf.ConfigMapKeyRef.Optional == nil || !*vf.ConfigMapKeyRef.Optional) {
				t.Errorf("%s: env %s: ConfigMap %s has no key %s", where, e.Name, cm.Name, vf.ConfigMapKeyRef.Key)
			}
			env[e.Name] = v
		}
	}
	return env
}

func checkEnvNames(t *testing.T, objs []object, flags map[string]bool) {
	for wl, tpl := range podTemplates(objs) {
		for _, c := range tpl.Spec.Containers {
			where := wl + " container " + c.Name
			for name := range containerEnv(t, objs, where, c) {
				if strings.HasPrefix(name, "USERSD_") && !flags[name] {
					t.Errorf("%s: %s is no flag of usersd (%s); misspelt or removed?", where, name, configGo)
				}
			}
		}
	}
	// A USERSD_* key of the ConfigMap must be a flag even where no container
	// reads it yet.
	for _, cm := range all[corev1.ConfigMap](objs) {
		for k := range cm.Data {
			if strings.HasPrefix(k, "USERSD_") && !flags[k] {
				t.Errorf("ConfigMap %s: %s is no flag of usersd", cm.Name, k)
			}
		}
	}
}

func serverDeployment(t *testing.T, objs []object) (*appsv1.Deployment, *corev1.Container) {
	d := find[appsv1.Deployment](objs, "Deployment", appName)
	if d == nil {
		t.Fatalf("no Deployment %s", appName)
	}
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == appName {
			return d, c
		}
	}
	t.Fatalf("Deployment %s: no container %s", appName, appName)
	return nil, nil
}

func durationEnv(t *testing.T, env map[string]string, name string, def time.Duration) time.Duration {
	v, ok := env[name]
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Errorf("%s=%q: %v", name, v, err)
	}
	return d
}

func checkServer(t *testing.T, objs []object) {
	d, c := serverDeployment(t, objs)
	spec := d.Spec.Template.Spec
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("usersd args = %q, want [serve]", c.Args)
	}
	if spec.ServiceAccountName != appName {
		t.Errorf("serviceAccountName = %q, want %s", spec.ServiceAccountName, appName)
	}
	if find[corev1.ServiceAccount](objs, "ServiceAccount", spec.ServiceAccountName) == nil {
		t.Errorf("ServiceAccount %s not in the build", spec.ServiceAccountName)
	}
	// In a cluster every call is authenticated (docs/security.md).
	env := containerEnv(t, objs, "usersd", *c)
	if env["USERSD_AUTH"] != "jwt" {
		t.Errorf("USERSD_AUTH = %q, want jwt", env["USERSD_AUTH"])
	}
	for _, k := range []string{"USERSD_AUTH_ISSUER", "USERSD_AUTH_AUDIENCE", "USERSD_AUTH_JWKS"} {
		if env[k] == "" {
			t.Errorf("%s is not set; --auth=jwt needs it", k)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, want := range map[string]int32{"http": 8080, "grpc": 9090, "admin": 9091} {
		if ports[name] != want {
			t.Errorf("container port %s = %d, want %d", name, ports[name], want)
		}
	}

	// Probes.
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.StartupProbe == nil {
		t.Fatalf("usersd needs readiness, liveness and startup probes; readiness=%v liveness=%v startup=%v",
			c.ReadinessProbe != nil, c.LivenessProbe != nil, c.StartupProbe != nil)
	}
	if g := c.ReadinessProbe.GRPC; g == nil || g.Port != 9090 {
		t.Errorf("readinessProbe: want native gRPC on 9090 (grpc.health.v1), got %+v", c.ReadinessProbe.ProbeHandler)
	}
	// Liveness must never check dependencies: /livez, or gRPC (which would
	// follow /readyz and restart pods on a database outage) is refused.
	if h := c.LivenessProbe.HTTPGet; h == nil || h.Path != "/livez" || !portIs(h.Port, "admin", 9091) {
		t.Errorf("livenessProbe: want httpGet /livez on the admin port, got %+v", c.LivenessProbe.ProbeHandler)
	}
	if h := c.StartupProbe.HTTPGet; h != nil && h.Path == "/readyz" {
		t.Errorf("startupProbe on /readyz: a database outage would restart pods during startup")
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if h := p.HTTPGet; h != nil && !portIs(h.Port, "admin", 9091) {
			t.Errorf("HTTP probe %s on port %s, want the admin port", h.Path, h.Port.String())
		}
	}

	// Termination budget.
	var sleep time.Duration
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("usersd: want lifecycle.preStop.sleep (distroless has no shell for exec sleep)")
	} else {
		if c.Lifecycle.PreStop.Exec != nil {
			t.Errorf("usersd: preStop exec cannot run in a distroless image")
		}
		sleep = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	delay := durationEnv(t, env, "USERSD_SHUTDOWN_DELAY", defaultShutdownDelay)
	timeout := durationEnv(t, env, "USERSD_SHUTDOWN_TIMEOUT", defaultShutdownTimeout)
	need := sleep + delay + timeout + graceMargin
	if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds = %v, want >= preStop %v + delay %v + timeout %v + margin %v = %v",
			ptrStr(spec.TerminationGracePeriodSeconds), sleep, delay, timeout, graceMargin, need)
	}

	// The migration Job migrates; replicas do not.
	if env["USERSD_MIGRATE"] != "false" {
		t.Errorf("usersd: USERSD_MIGRATE = %q, want false (the Job %s migrates)", env["USERSD_MIGRATE"], migrateNm)
	}
	if !secretEnv(c, "USERSD_DATABASE_URL", dbSecret) {
		t.Errorf("usersd: USERSD_DATABASE_URL must come from Secret %s", dbSecret)
	}
	for _, k := range []string{"USERSD_DATABASE_URL", "USERSD_PAGE_TOKEN_KEY"} {
		if cm := find[corev1.ConfigMap](objs, "ConfigMap", configMap); cm != nil {
			if _, ok := cm.Data[k]; ok {
				t.Errorf("ConfigMap %s holds the secret %s", configMap, k)
			}
		}
	}
}

func portIs(p intstr.IntOrString, name string, num int32) bool {
	return (p.Type == intstr.String && p.StrVal == name) || (p.Type == intstr.Int && p.IntVal == num)
}

func ptrStr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func secretEnv(c *corev1.Container, name, secret string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == secret
		}
	}
	return false
}

func checkScaling(t *testing.T, objs []object) {
	d, _ := serverDeployment(t, objs)
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	// The HPA owns the count once applied: the count to reason about is the
	// smallest it will scale to.
	floor := replicas
	hpaFound := false
	for _, h := range all[autoscalingv2.HorizontalPodAutoscaler](objs) {
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != appName {
			continue
		}
		hpaFound = true
		min := int32(1)
		if h.Spec.MinReplicas != nil {
			min = *h.Spec.MinReplicas
		}
		if replicas < min || replicas > h.Spec.MaxReplicas {
			t.Errorf("Deployment replicas %d outside HPA [%d, %d]", replicas, min, h.Spec.MaxReplicas)
		}
		floor = min
		cpu := false
		for _, m := range h.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
				m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization == 70 {
				cpu = true
			}
		}
		if !cpu {
			t.Errorf("HPA %s: want a CPU utilization target of 70%%", h.Name)
		}
	}
	if !hpaFound {
		t.Errorf("no HorizontalPodAutoscaler targets Deployment %s", appName)
	}

	podLabels := labels.Set(d.Spec.Template.Labels)
	pdbFound := false
	for _, p := range all[policyv1.PodDisruptionBudget](objs) {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(podLabels) {
			continue
		}
		pdbFound = true
		switch {
		case p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil:
			t.Errorf("PDB %s: both minAvailable and maxUnavailable", p.Name)
		case p.Spec.MinAvailable != nil:
			min, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, int(floor), true)
			if err != nil {
				t.Errorf("PDB %s: %v", p.Name, err)
			}
			if int32(min) >= floor || int32(min) >= replicas {
				t.Errorf("PDB %s: minAvailable %s with %d replicas (HPA floor %d): no pod can ever be evicted, drains block",
					p.Name, p.Spec.MinAvailable.String(), replicas, floor)
			}
		case p.Spec.MaxUnavailable != nil:
			max, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, int(floor), false)
			if err != nil || max < 1 {
				t.Errorf("PDB %s: maxUnavailable %s allows no eviction", p.Name, p.Spec.MaxUnavailable.String())
			}
		default:
			t.Errorf("PDB %s: neither minAvailable nor maxUnavailable", p.Name)
		}
	}
	if !pdbFound {
		t.Errorf("no PodDisruptionBudget selects the usersd pods")
	}
}

func checkServices(t *testing.T, objs []object) {
	d, _ := serverDeployment(t, objs)
	podLabels := d.Spec.Template.Labels
	for _, want := range []struct {
		name     string
		port     int32
		headless bool
	}{{grpcSvc, 9090, true}, {httpSvc, 8080, false}} {
		s := find[corev1.Service](objs, "Service", want.name)
		if s == nil {
			t.Errorf("no Service %s", want.name)
			continue
		}
		if want.headless && s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s: clusterIP %q, want None (headless, for client-side balancing)", s.Name, s.Spec.ClusterIP)
		}
		if !want.headless && (s.Spec.ClusterIP == corev1.ClusterIPNone || (s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP)) {
			t.Errorf("Service %s: want a ClusterIP Service", s.Name)
		}
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) {
			t.Errorf("Service %s: selector %v does not select the usersd pods %v", s.Name, s.Spec.Selector, podLabels)
		}
		if !selectsOnly(objs, s.Spec.Selector, appName) {
			t.Errorf("Service %s: selector %v also selects other pods", s.Name, s.Spec.Selector)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != want.port {
			t.Errorf("Service %s: ports %+v, want one on %d", s.Name, s.Spec.Ports, want.port)
		} else if tp := s.Spec.Ports[0].TargetPort; !portIs(tp, portName(want.port), want.port) && tp.String() != "0" {
			t.Errorf("Service %s: targetPort %s", s.Name, tp.String())
		}
	}
}

func portName(p int32) string {
	return map[int32]string{8080: "http", 9090: "grpc", 9091: "admin"}[p]
}

// selectsOnly reports whether sel selects the pods of Deployment name alone.
func selectsOnly(objs []object, sel map[string]string, name string) bool {
	s := labels.SelectorFromSet(sel)
	for wl, tpl := range podTemplates(objs) {
		if wl != "Deployment "+name && s.Matches(labels.Set(tpl.Labels)) {
			return false
		}
	}
	return true
}

var upstreamRE = regexp.MustCompile(`^(dns|kubernetes):///([^/:]+):(\d+)$`)

func checkGateway(t *testing.T, objs []object) {
	g := find[appsv1.Deployment](objs, "Deployment", gatewayNm)
	if g == nil {
		t.Fatalf("no Deployment %s", gatewayNm)
	}
	cs := g.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("gateway: want one container, got %d", len(cs))
	}
	args := cs[0].Args
	if len(args) == 0 || args[0] != "gateway" {
		t.Errorf("gateway args = %q, want gateway ...", args)
	}
	var upstream string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--upstream="); ok {
			upstream = v
		} else if a == "--upstream" && i+1 < len(args) {
			upstream = args[i+1]
		}
	}
	m := upstreamRE.FindStringSubmatch(upstream)
	if m == nil {
		t.Fatalf("gateway --upstream %q: want dns:///HOST:PORT or kubernetes:///NAME.NAMESPACE:PORT", upstream)
	}
	scheme, host, port := m[1], m[2], m[3]
	svc := find[corev1.Service](objs, "Service", grpcSvc)
	if svc == nil {
		t.Fatalf("no Service %s", grpcSvc)
	}
	ns := objs[0].namespace
	for _, o := range objs {
		if o.kind == "Service" && o.name == grpcSvc {
			ns = o.namespace
		}
	}
	var okHosts []string
	switch scheme {
	case "dns":
		okHosts = []string{grpcSvc + "." + ns + ".svc.cluster.local", grpcSvc + "." + ns + ".svc"}
	case "kubernetes":
		okHosts = []string{grpcSvc + "." + ns}
		if find[rbacv1.Role](objs, "Role", "usersd-endpoints-reader") == nil {
			t.Errorf("gateway: kubernetes:/// upstream needs the endpoints Role")
		}
	}
	if !slices.Contains(okHosts, host) {
		t.Errorf("gateway --upstream host %q, want one of %q (the headless Service %s in namespace %s)", host, okHosts, grpcSvc, ns)
	}
	if p, _ := strconv.Atoi(port); len(svc.Spec.Ports) == 0 || int32(p) != svc.Spec.Ports[0].Port {
		t.Errorf("gateway --upstream port %s is not the port of Service %s", port, grpcSvc)
	}
	if _, _, err := net.SplitHostPort(host + ":" + port); err != nil {
		t.Errorf("gateway --upstream: %v", err)
	}
	if g.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
		t.Errorf("gateway: no terminationGracePeriodSeconds")
	}
	if g.Spec.Template.Labels["app.kubernetes.io/component"] == "server" {
		t.Errorf("gateway pods must not carry the server's labels (Services would route to them)")
	}
}

func checkMigrateJob(t *testing.T, objs []object) {
	j := find[batchv1.Job](objs, "Job", migrateNm)
	if j == nil {
		t.Fatalf("no Job %s", migrateNm)
	}
	if j.Spec.BackoffLimit == nil || j.Spec.TTLSecondsAfterFinished == nil {
		t.Errorf("Job %s: want backoffLimit and ttlSecondsAfterFinished", j.Name)
	}
	spec := j.Spec.Template.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("Job %s: restartPolicy %q", j.Name, spec.RestartPolicy)
	}
	if len(spec.Containers) != 1 || !slices.Equal(spec.Containers[0].Args, []string{"migrate"}) {
		t.Fatalf("Job %s: want one container with args [migrate]", j.Name)
	}
	c := spec.Containers[0]
	if !secretEnv(&c, "USERSD_DATABASE_URL", dbSecret) {
		t.Errorf("Job %s: USERSD_DATABASE_URL must come from Secret %s", j.Name, dbSecret)
	}
	_, server := serverDeployment(t, objs)
	if c.Image != server.Image {
		t.Errorf("Job %s: image %q, server %q: migrate with the image that serves", j.Name, c.Image, server.Image)
	}
}

func checkRBAC(t *testing.T, objs []object) {
	var role *rbacv1.Role
	for _, r := range all[rbacv1.Role](objs) {
		for _, rule := range r.Rules {
			if slices.Contains(rule.APIGroups, "discovery.k8s.io") && slices.Contains(rule.Resources, "endpointslices") {
				role = r
			}
		}
	}
	if role == nil {
		t.Fatalf("no Role grants discovery.k8s.io endpointslices")
	}
	for _, want := range []struct{ group, res string }{{"discovery.k8s.io", "endpointslices"}, {"", "endpoints"}} {
		verbs := map[string]bool{}
		for _, rule := range role.Rules {
			if slices.Contains(rule.APIGroups, want.group) && slices.Contains(rule.Resources, want.res) {
				for _, v := range rule.Verbs {
					verbs[v] = true
				}
			}
		}
		for _, v := range []string{"get", "list", "watch"} {
			if !verbs[v] {
				t.Errorf("Role %s: no %s on %q %s", role.Name, v, want.group, want.res)
			}
		}
		if verbs["*"] || verbs["create"] || verbs["update"] || verbs["delete"] || verbs["patch"] {
			t.Errorf("Role %s: more than read access to %s", role.Name, want.res)
		}
	}
	bound := false
	for _, b := range all[rbacv1.RoleBinding](objs) {
		if b.RoleRef.Kind != "Role" || b.RoleRef.Name != role.Name || b.RoleRef.APIGroup != rbacv1.GroupName {
			continue
		}
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == appName {
				bound = true
			}
		}
	}
	if !bound {
		t.Errorf("no RoleBinding binds Role %s to ServiceAccount %s", role.Name, appName)
	}
}

func checkNetworkPolicy(t *testing.T, objs []object) {
	d, _ := serverDeployment(t, objs)
	podLabels := labels.Set(d.Spec.Template.Labels)
	var np *networkingv1.NetworkPolicy
	for _, p := range all[networkingv1.NetworkPolicy](objs) {
		if sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector); err == nil && !sel.Empty() && sel.Matches(podLabels) {
			np = p
		}
	}
	if np == nil {
		t.Fatalf("no NetworkPolicy selects the usersd pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("NetworkPolicy %s: want policyTypes Ingress and Egress", np.Name)
	}
	allowed := map[int32]bool{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port == nil {
				t.Errorf("NetworkPolicy %s: an ingress rule opens every port", np.Name)
				continue
			}
			allowed[p.Port.IntVal] = true
			if p.Port.IntVal != 9091 {
				continue
			}
			// The admin port: never from everywhere nor the whole namespace.
			if len(r.From) == 0 {
				t.Errorf("NetworkPolicy %s: admin port 9091 open to everyone", np.Name)
			}
			for _, f := range r.From {
				if f.IPBlock != nil || (f.PodSelector != nil && len(f.PodSelector.MatchLabels)+len(f.PodSelector.MatchExpressions) == 0 && f.NamespaceSelector == nil) {
					t.Errorf("NetworkPolicy %s: admin port 9091 open beyond monitoring: %+v", np.Name, f)
				}
				sels := fmt.Sprint(f.PodSelector, f.NamespaceSelector)
				if !strings.Contains(sels, "prometheus") && !strings.Contains(sels, "monitoring") {
					t.Errorf("NetworkPolicy %s: admin port 9091 from a peer not labelled prometheus/monitoring: %s", np.Name, sels)
				}
			}
		}
	}
	for _, p := range []int32{8080, 9090, 9091} {
		if !allowed[p] {
			t.Errorf("NetworkPolicy %s: no ingress on %d", np.Name, p)
		}
	}
	egress := map[string]bool{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil {
				proto := corev1.ProtocolTCP
				if p.Protocol != nil {
					proto = *p.Protocol
				}
				egress[fmt.Sprintf("%s/%d", proto, p.Port.IntVal)] = true
			}
		}
	}
	for _, want := range []string{"TCP/5432", "UDP/53", "TCP/53"} {
		if !egress[want] {
			t.Errorf("NetworkPolicy %s: no egress to %s", np.Name, want)
		}
	}
}

func checkSecrets(t *testing.T, target string, objs []object) {
	for _, s := range all[corev1.Secret](objs) {
		placeholder := false
		for _, v := range s.StringData {
			placeholder = placeholder || strings.Contains(v, "REPLACE")
		}
		if placeholder && target != "overlays/dev" {
			t.Errorf("Secret %s with placeholder credentials in %s", s.Name, target)
		}
	}
	if target == "overlays/prod" {
		for wl, tpl := range podTemplates(objs) {
			for _, c := range tpl.Spec.Containers {
				if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
					t.Errorf("%s: image %q is not pinned", wl, c.Image)
				}
			}
		}
	}
}
