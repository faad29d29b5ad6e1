package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The tiers and whether each must have an HPA.
var tiers = map[string]bool{
	"gateway": true, "router": true, "store": true, "presence": false, "pusher": true,
	"api": true,
}

// Tiers whose NNG answer address travels with their commands and is
// dialled back, so it must be the pod's own IP.
var podAddress = map[string]string{"gateway": "PARLEY_GATEWAY_NNG", "api": "PARLEY_API_NNG"}

// Who dials whom (the code's connections, docs/ARCHITECTURE.md): each
// edge must be admitted by a NetworkPolicy selecting the callee's pods,
// on the callee container's named port.
var edges = []struct{ from, to, port string }{
	{"gateway", "router", "ingress"},
	{"gateway", "store", "rpc"},
	{"gateway", "presence", "rpc"},
	{"gateway", "presence", "pub"},
	{"gateway", "pusher", "rpc"},
	{"router", "gateway", "deliveries"},
	{"router", "presence", "rpc"},
	{"router", "presence", "pub"},
	{"pusher", "presence", "rpc"},
	{"api", "router", "ingress"},
	{"api", "store", "rpc"},
	{"api", "presence", "rpc"},
	{"api", "pusher", "rpc"},
	{"api", "gateway", "deliveries"}, // DisconnectUser
	{"router", "api", "answers"},
}

// The pod label a backend client of parley-api carries (networkpolicy.yaml).
const apiClientLabel = "parley.io/api-client"

// Settings that are secrets: never in a ConfigMap or a literal value.
var secretEnv = []string{"PARLEY_JWT_SECRET", "PARLEY_API_KEY"}

// Tiers whose consumer-group readiness or ownership caps them at the
// partition count.
var partitionCapped = map[string]bool{"router": true, "store": true, "pusher": true}

type objects struct {
	namespaces []string
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]bool
	services   []*corev1.Service
	workloads  []workload
	hpas       []*autoscalingv2.HorizontalPodAutoscaler
	pdbs       []*policyv1.PodDisruptionBudget
	netpols    []*networkingv1.NetworkPolicy
	kafkas     []*strimziKafka
	pools      []*strimziNodePool
	topics     []*strimziTopic
	clusters   []*cnpgCluster
}

type workload struct {
	kind, name, tier string
	replicas         *int32
	selector         *metav1.LabelSelector
	tmpl             *corev1.PodTemplateSpec
	serviceName      string // StatefulSet
	recreate         bool
}

func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "kafka.strimzi.io/v1beta2/Kafka":
		return &strimziKafka{}
	case "kafka.strimzi.io/v1beta2/KafkaNodePool":
		return &strimziNodePool{}
	case "kafka.strimzi.io/v1beta2/KafkaTopic":
		return &strimziTopic{}
	case "postgresql.cnpg.io/v1/Cluster":
		return &cnpgCluster{}
	}
	return nil
}

// splitDocs cuts a YAML stream at its "---" lines.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func decodeStrict(doc []byte, into any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

func checkManifests(p *problems, path string, external []string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		p.addf("%v", err)
		return 0
	}
	o := objects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]bool{}}
	for _, s := range external {
		o.secrets[s] = true
	}
	docs := splitDocs(data)
	for i, doc := range docs {
		var tm struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			p.addf("document %d: %v", i+1, err)
			continue
		}
		id := fmt.Sprintf("%s %s/%s", tm.Kind, tm.Metadata.Namespace, tm.Metadata.Name)
		obj := newObject(tm.APIVersion, tm.Kind)
		if obj == nil {
			p.addf("%s: no schema known for %s %s", id, tm.APIVersion, tm.Kind)
			continue
		}
		if err := decodeStrict(doc, obj); err != nil {
			p.addf("%s: %v", id, err)
			continue
		}
		if tm.Metadata.Name == "" {
			p.addf("%s: no name", id)
		}
		if tm.Kind != "Namespace" {
			o.namespaces = append(o.namespaces, tm.Metadata.Namespace)
		}
		o.add(obj)
	}
	o.checkNamespaces(p)
	for _, w := range o.workloads {
		o.checkWorkload(p, w)
	}
	o.checkTiers(p)
	o.checkHPAs(p)
	o.checkNetworkPolicies(p)
	o.checkKafka(p)
	o.checkPostgres(p)
	return len(docs)
}

func (o *objects) add(obj any) {
	switch v := obj.(type) {
	case *corev1.ConfigMap:
		o.configMaps[v.Name] = v
	case *corev1.Secret:
		o.secrets[v.Name] = true
	case *corev1.Service:
		o.services = append(o.services, v)
	case *appsv1.Deployment:
		o.workloads = append(o.workloads, workload{kind: "Deployment", name: v.Name,
			tier: v.Labels["app.kubernetes.io/component"], replicas: v.Spec.Replicas,
			selector: v.Spec.Selector, tmpl: &v.Spec.Template,
			recreate: v.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType})
	case *appsv1.StatefulSet:
		o.workloads = append(o.workloads, workload{kind: "StatefulSet", name: v.Name,
			tier: v.Labels["app.kubernetes.io/component"], replicas: v.Spec.Replicas,
			selector: v.Spec.Selector, tmpl: &v.Spec.Template, serviceName: v.Spec.ServiceName})
	case *autoscalingv2.HorizontalPodAutoscaler:
		o.hpas = append(o.hpas, v)
	case *policyv1.PodDisruptionBudget:
		o.pdbs = append(o.pdbs, v)
	case *networkingv1.NetworkPolicy:
		o.netpols = append(o.netpols, v)
	case *strimziKafka:
		o.kafkas = append(o.kafkas, v)
	case *strimziNodePool:
		o.pools = append(o.pools, v)
	case *strimziTopic:
		o.topics = append(o.topics, v)
	case *cnpgCluster:
		o.clusters = append(o.clusters, v)
	}
}

func (o *objects) checkNamespaces(p *problems) {
	for _, ns := range o.namespaces {
		if ns == "" || ns != o.namespaces[0] {
			p.addf("objects in namespaces %q and %q: an overlay puts everything in one", o.namespaces[0], ns)
			return
		}
	}
}

func selects(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(lbls))
}

func (o *objects) checkWorkload(p *problems, w workload) {
	id := w.kind + " " + w.name
	if _, ok := tiers[w.tier]; !ok {
		p.addf("%s: component label %q is not a parley tier", id, w.tier)
	}
	if !selects(w.selector, w.tmpl.Labels) {
		p.addf("%s: selector does not match its pod labels", id)
	}
	ps := w.tmpl.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot ||
		ps.SecurityContext.RunAsUser == nil || *ps.SecurityContext.RunAsUser == 0 {
		p.addf("%s: pod must run as a non-root numeric user", id)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		p.addf("%s: parley needs no API token: automountServiceAccountToken false", id)
	}
	spread := false
	for _, t := range ps.TopologySpreadConstraints {
		spread = spread || selects(t.LabelSelector, w.tmpl.Labels)
	}
	if !spread {
		p.addf("%s: no topology spread constraint selecting its pods", id)
	}
	if len(ps.Containers) != 1 {
		p.addf("%s: one container per pod expected, found %d", id, len(ps.Containers))
	}
	for i := range ps.Containers {
		o.checkContainer(p, id, w, &ps.Containers[i], ps.TerminationGracePeriodSeconds)
	}
	if w.tier == "presence" && (w.replicas == nil || *w.replicas != 1 || !w.recreate) {
		p.addf("%s: presence is one process: replicas 1 and the Recreate strategy", id)
	}
}

func (o *objects) checkContainer(p *problems, id string, w workload, c *corev1.Container, grace *int64) {
	id += " container " + c.Name
	if c.Image == "" || len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/parley-"+w.tier {
		p.addf("%s: image and command /usr/local/bin/parley-%s expected", id, w.tier)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		p.addf("%s: cpu and memory requests and a memory limit are required", id)
	}
	if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
		p.addf("%s: memory limit below the request", id)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		len(sc.Capabilities.Add) != 0 {
		p.addf("%s: read-only root, no privilege escalation and all capabilities dropped required", id)
	}
	ports := map[string]bool{}
	for _, cp := range c.Ports {
		ports[cp.Name] = true
	}
	probe := func(what string, pr *corev1.Probe, path string) {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != path {
			p.addf("%s: %s probe on GET %s required", id, what, path)
			return
		}
		if pr.HTTPGet.Port.Type == 1 && !ports[pr.HTTPGet.Port.StrVal] {
			p.addf("%s: %s probe names port %q the container lacks", id, what, pr.HTTPGet.Port.StrVal)
		}
	}
	probe("startup", c.StartupProbe, "/livez")
	probe("liveness", c.LivenessProbe, "/livez")
	probe("readiness", c.ReadinessProbe, "/readyz")
	o.checkEnv(p, id, w.tier, c)
	o.checkDrain(p, id, w.tier, c, grace)
}

// Every $(VAR) is defined before it is used, every reference exists.
func (o *objects) checkEnv(p *problems, id, tier string, c *corev1.Container) {
	defined := map[string]bool{}
	for _, ef := range c.EnvFrom {
		optional := false
		if ef.ConfigMapRef != nil {
			optional = ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional
			cm, ok := o.configMaps[ef.ConfigMapRef.Name]
			if !ok && !optional {
				p.addf("%s: ConfigMap %s missing", id, ef.ConfigMapRef.Name)
			}
			if ok {
				for k := range cm.Data {
					defined[k] = true
				}
			}
		}
		if ef.SecretRef != nil {
			optional = ef.SecretRef.Optional != nil && *ef.SecretRef.Optional
			if !o.secrets[ef.SecretRef.Name] && !optional {
				p.addf("%s: Secret %s missing", id, ef.SecretRef.Name)
			}
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		for _, m := range ref.FindAllStringSubmatch(e.Value, -1) {
			if !defined[m[1]] {
				p.addf("%s: %s uses $(%s) before it is defined", id, e.Name, m[1])
			}
		}
		if vf := e.ValueFrom; vf != nil && vf.SecretKeyRef != nil && !o.secrets[vf.SecretKeyRef.Name] {
			p.addf("%s: %s reads Secret %s, which neither the manifests nor -external provide", id, e.Name, vf.SecretKeyRef.Name)
		}
		defined[e.Name] = true
	}
	if v, ok := podAddress[tier]; ok {
		nng := envValue(c, v)
		ip := false
		for _, e := range c.Env {
			ip = ip || (e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
				e.ValueFrom.FieldRef.FieldPath == "status.podIP")
		}
		if !ip || !strings.Contains(nng, "$(POD_IP)") {
			p.addf("%s: %s must be the pod's own address (POD_IP from status.podIP)", id, v)
		}
	}
	for _, name := range secretEnv {
		for _, e := range c.Env {
			if e.Name == name && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				p.addf("%s: %s must come from a Secret (secretKeyRef)", id, name)
			}
		}
	}
	if tier == "api" {
		key := false
		for _, e := range c.Env {
			key = key || (e.Name == "PARLEY_API_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil)
		}
		if !key {
			p.addf("%s: PARLEY_API_KEY from a Secret required (parley-api does not start without it)", id)
		}
	}
}

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// A preStop sleep, and a grace period longer than it plus the drain.
func (o *objects) checkDrain(p *problems, id, tier string, c *corev1.Container, grace *int64) {
	var sleep int64
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		p.addf("%s: a preStop sleep is required (the image has no shell for exec hooks)", id)
	} else {
		sleep = c.Lifecycle.PreStop.Sleep.Seconds
	}
	drain := int64(0)
	if v := envValue(c, "PARLEY_DRAIN_MS"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			p.addf("%s: PARLEY_DRAIN_MS %q is not a number", id, v)
		}
		drain = (ms+999)/1000 + 2 // + the gateway's hard close after the deadline
	} else if tier == "gateway" {
		drain = 10 + 2 // the default PARLEY_DRAIN_MS
	}
	if tier == "api" {
		// A call in flight waits up to PARLEY_API_TIMEOUT_MS (10 s).
		ms := int64(10000)
		if v := envValue(c, "PARLEY_API_TIMEOUT_MS"); v != "" {
			var err error
			if ms, err = strconv.ParseInt(v, 10, 64); err != nil {
				p.addf("%s: PARLEY_API_TIMEOUT_MS %q is not a number", id, v)
			}
		}
		drain = (ms + 999) / 1000
	}
	g := int64(30)
	if grace != nil {
		g = *grace
	}
	if g <= sleep+drain {
		p.addf("%s: terminationGracePeriodSeconds %d not longer than preStop %d s + drain %d s", id, g, sleep, drain)
	}
}

// Every tier: a Service, a PodDisruptionBudget, and an HPA where it scales.
func (o *objects) checkTiers(p *problems) {
	seen := map[string]bool{}
	for _, w := range o.workloads {
		seen[w.tier] = true
		id := w.kind + " " + w.name
		svc := false
		for _, s := range o.services {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.tmpl.Labels)) {
				svc = true
				if w.serviceName == s.Name && s.Spec.ClusterIP != "None" {
					p.addf("%s: its Service %s must be headless", id, s.Name)
				}
			}
		}
		if !svc {
			p.addf("%s: no Service selects it", id)
		}
		if w.serviceName != "" && !o.hasService(w.serviceName) {
			p.addf("%s: serviceName %s has no Service", id, w.serviceName)
		}
		pdb := false
		for _, b := range o.pdbs {
			pdb = pdb || selects(b.Spec.Selector, w.tmpl.Labels)
		}
		if !pdb {
			p.addf("%s: no PodDisruptionBudget selects it", id)
		}
		h := o.hpaFor(w)
		if tiers[w.tier] && h == nil {
			p.addf("%s: no HorizontalPodAutoscaler", id)
		}
		if !tiers[w.tier] && h != nil {
			p.addf("%s: must not be autoscaled", id)
		}
	}
	for t := range tiers {
		if !seen[t] {
			p.addf("tier %s has no workload", t)
		}
	}
}

func (o *objects) hasService(name string) bool {
	for _, s := range o.services {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (o *objects) hpaFor(w workload) *autoscalingv2.HorizontalPodAutoscaler {
	for _, h := range o.hpas {
		if h.Spec.ScaleTargetRef.Kind == w.kind && h.Spec.ScaleTargetRef.Name == w.name {
			return h
		}
	}
	return nil
}

func (o *objects) partitions() int {
	if len(o.topics) == 1 && o.topics[0].Spec.Partitions != nil {
		return *o.topics[0].Spec.Partitions
	}
	return 0
}

func (o *objects) checkHPAs(p *problems) {
	parts := o.partitions()
	for _, w := range o.workloads {
		h := o.hpaFor(w)
		if h == nil {
			continue
		}
		id := "HorizontalPodAutoscaler " + h.Name
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			p.addf("%s: minReplicas must be 1..maxReplicas", id)
		}
		if len(h.Spec.Metrics) != 1 {
			p.addf("%s: one metric expected", id)
			continue
		}
		m := h.Spec.Metrics[0]
		if w.tier == "gateway" {
			if m.Type != autoscalingv2.PodsMetricSourceType || m.Pods == nil ||
				m.Pods.Metric.Name != "parley_gateway_connections" || m.Pods.Target.AverageValue == nil {
				p.addf("%s: gateways scale on parley_gateway_connections per pod", id)
			}
		} else if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil ||
			m.Resource.Name != corev1.ResourceCPU || m.Resource.Target.AverageUtilization == nil {
			p.addf("%s: scales on CPU utilisation", id)
		}
		if partitionCapped[w.tier] && (parts == 0 || int(h.Spec.MaxReplicas) > parts) {
			p.addf("%s: maxReplicas %d above the topic's %d partitions", id, h.Spec.MaxReplicas, parts)
		}
		if w.tier == "router" {
			o.checkRouterList(p, w, int(h.Spec.MaxReplicas))
		}
	}
}

// Gateways must know every router the HPA may start, by its stable name.
func (o *objects) checkRouterList(p *problems, w workload, max int) {
	cm := o.configMaps["parley-config"]
	if cm == nil {
		p.addf("ConfigMap parley-config missing")
		return
	}
	have := map[string]bool{}
	for _, u := range strings.Split(cm.Data["PARLEY_ROUTERS"], ",") {
		have[strings.TrimSpace(u)] = true
	}
	for k := 0; k < max; k++ {
		u := fmt.Sprintf("tcp://%s-%d.%s:7201", w.name, k, w.serviceName)
		if !have[u] {
			p.addf("ConfigMap parley-config: PARLEY_ROUTERS lacks %s (router HPA goes to %d)", u, max)
		}
	}
	for _, name := range secretEnv {
		if _, ok := cm.Data[name]; ok {
			p.addf("ConfigMap parley-config: %s is a secret: put it in a Secret", name)
		}
	}
	if cm.Data["PARLEY_PARTITIONS"] != strconv.Itoa(o.partitions()) {
		p.addf("ConfigMap parley-config: PARLEY_PARTITIONS %q differs from the KafkaTopic's %d",
			cm.Data["PARLEY_PARTITIONS"], o.partitions())
	}
}

// Default deny for parley's pods; only the gateway's client port open to
// all; every other rule names its peers.
func (o *objects) checkNetworkPolicies(p *problems) {
	deny := false
	for _, np := range o.netpols {
		id := "NetworkPolicy " + np.Name
		if len(np.Spec.Ingress) == 0 && len(np.Spec.PolicyTypes) == 1 && np.Spec.PolicyTypes[0] == networkingv1.PolicyTypeIngress &&
			np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] == "parley" && len(np.Spec.PodSelector.MatchLabels) == 1 {
			deny = true
		}
		gateway := np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] == "gateway"
		for _, r := range np.Spec.Ingress {
			if len(r.From) > 0 {
				continue
			}
			if !gateway || len(r.Ports) != 1 || r.Ports[0].Port == nil || r.Ports[0].Port.IntValue() != 8080 {
				p.addf("%s: a rule open to everyone on something other than the gateway's client port", id)
			}
		}
	}
	if !deny {
		p.addf("no default-deny NetworkPolicy for parley's pods")
	}
	o.checkEdges(p)
}

// The workload of a tier, nil when there is none.
func (o *objects) tier(t string) *workload {
	for i := range o.workloads {
		if o.workloads[i].tier == t {
			return &o.workloads[i]
		}
	}
	return nil
}

// containerPort of the named port of w's container, 0 when it has none.
func namedPort(w *workload, name string) int32 {
	for _, c := range w.tmpl.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// Whether rule r of a policy admits port (number or name) of pod w from
// a peer for which match is true.
func admits(r networkingv1.NetworkPolicyIngressRule, w *workload, port int32, match func(networkingv1.NetworkPolicyPeer) bool) bool {
	portOK := len(r.Ports) == 0
	for _, rp := range r.Ports {
		if rp.Port == nil || (rp.Port.Type == 0 && rp.Port.IntVal == port) ||
			(rp.Port.Type == 1 && namedPort(w, rp.Port.StrVal) == port) {
			portOK = true
		}
	}
	if !portOK {
		return false
	}
	if len(r.From) == 0 {
		return true
	}
	for _, peer := range r.From {
		if match(peer) {
			return true
		}
	}
	return false
}

// Whether some NetworkPolicy selecting w's pods admits port from match.
func (o *objects) admitted(w *workload, port int32, match func(networkingv1.NetworkPolicyPeer) bool) bool {
	for _, np := range o.netpols {
		if !selects(&np.Spec.PodSelector, w.tmpl.Labels) {
			continue
		}
		for _, r := range np.Spec.Ingress {
			if admits(r, w, port, match) {
				return true
			}
		}
	}
	return false
}

// Every connection parley makes is admitted; every metrics port is open
// to the monitoring namespace; parley-api's callers are labelled clients.
func (o *objects) checkEdges(p *problems) {
	for _, e := range edges {
		from, to := o.tier(e.from), o.tier(e.to)
		if from == nil || to == nil {
			continue // checkTiers reports the missing tier
		}
		port := namedPort(to, e.port)
		if port == 0 {
			p.addf("%s %s: no container port named %q (%s dials it)", to.kind, to.name, e.port, e.from)
			continue
		}
		src := from.tmpl.Labels
		if !o.admitted(to, port, func(peer networkingv1.NetworkPolicyPeer) bool {
			return peer.NamespaceSelector == nil && peer.IPBlock == nil && peer.PodSelector != nil &&
				selects(peer.PodSelector, src)
		}) {
			p.addf("%s %s: no NetworkPolicy admits %s's pods on port %d (%s)", to.kind, to.name, e.from, port, e.port)
		}
	}
	for i := range o.workloads {
		w := &o.workloads[i]
		v, err := strconv.ParseInt(w.tmpl.Annotations["prometheus.io/port"], 10, 32)
		if err != nil {
			p.addf("%s %s: prometheus.io/port annotation missing or not a number", w.kind, w.name)
			continue
		}
		if !o.admitted(w, int32(v), func(peer networkingv1.NetworkPolicyPeer) bool {
			return peer.PodSelector == nil && peer.NamespaceSelector != nil &&
				selects(peer.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": "monitoring"})
		}) {
			p.addf("%s %s: its metrics port %d is not open to the monitoring namespace", w.kind, w.name, v)
		}
	}
	api := o.tier("api")
	if api == nil {
		return
	}
	port := namedPort(api, "api")
	if port == 0 {
		p.addf("%s %s: no container port named \"api\"", api.kind, api.name)
		return
	}
	client := map[string]string{apiClientLabel: "true"}
	if !o.admitted(api, port, func(peer networkingv1.NetworkPolicyPeer) bool {
		return peer.PodSelector != nil && selects(peer.PodSelector, client)
	}) {
		p.addf("%s %s: no NetworkPolicy admits pods labelled %s=true on port %d", api.kind, api.name, apiClientLabel, port)
	}
	// Every peer admitted on the API port must carry the client label:
	// no bare namespace, IP block or other pods.
	for _, np := range o.netpols {
		if !selects(&np.Spec.PodSelector, api.tmpl.Labels) {
			continue
		}
		for _, r := range np.Spec.Ingress {
			if !admits(r, api, port, func(networkingv1.NetworkPolicyPeer) bool { return true }) {
				continue
			}
			for _, peer := range r.From {
				if peer.PodSelector == nil || peer.PodSelector.MatchLabels[apiClientLabel] != "true" {
					p.addf("NetworkPolicy %s: a peer on parley-api's port %d lacks podSelector %s: \"true\"", np.Name, port, apiClientLabel)
				}
			}
		}
	}
}

func (o *objects) checkKafka(p *problems) {
	if len(o.kafkas) != 1 || len(o.topics) != 1 || len(o.pools) == 0 {
		p.addf("one Kafka, one KafkaTopic and at least one KafkaNodePool expected")
		return
	}
	k := o.kafkas[0]
	id := "Kafka " + k.Name
	if k.Annotations["strimzi.io/kraft"] != "enabled" || k.Annotations["strimzi.io/node-pools"] != "enabled" {
		p.addf("%s: KRaft and node pools must be enabled by annotation", id)
	}
	if !strings.HasPrefix(k.Spec.Kafka.Version, "3.9.") {
		p.addf("%s: version %q: parley's librdkafka 2.0.2 needs Kafka 3.9.x", id, k.Spec.Kafka.Version)
	}
	if fmt.Sprint(k.Spec.Kafka.Config["min.insync.replicas"]) != "2" {
		p.addf("%s: min.insync.replicas must be 2", id)
	}
	plain := false
	names := regexp.MustCompile(`^[a-z0-9]{1,11}$`)
	for _, l := range k.Spec.Kafka.Listeners {
		if !names.MatchString(l.Name) || l.Port < 9092 || l.Port == 9404 || l.Port == 9999 {
			p.addf("%s: listener %q port %d not allowed by Strimzi", id, l.Name, l.Port)
		}
		switch l.Type {
		case "internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip":
		default:
			p.addf("%s: listener type %q unknown", id, l.Type)
		}
		plain = plain || (l.Type == "internal" && !l.TLS && l.Port == 9092)
	}
	if cm := o.configMaps["parley-config"]; cm == nil || !plain ||
		cm.Data["PARLEY_KAFKA_BROKERS"] != k.Name+"-kafka-bootstrap:9092" {
		p.addf("%s: PARLEY_KAFKA_BROKERS must be %s-kafka-bootstrap:9092 (a plain internal listener)", id, k.Name)
	}
	controllers, brokers := 0, 0
	for _, np := range o.pools {
		pid := "KafkaNodePool " + np.Name
		if np.Labels["strimzi.io/cluster"] != k.Name {
			p.addf("%s: label strimzi.io/cluster must name %s", pid, k.Name)
		}
		if np.Spec.Replicas == nil {
			p.addf("%s: replicas required", pid)
			continue
		}
		for _, r := range np.Spec.Roles {
			switch r {
			case "controller":
				controllers += *np.Spec.Replicas
			case "broker":
				brokers += *np.Spec.Replicas
			default:
				p.addf("%s: role %q unknown", pid, r)
			}
		}
		switch np.Spec.Storage.Type {
		case "jbod":
			for _, v := range np.Spec.Storage.Volumes {
				if v.ID == nil || (v.Type != "persistent-claim" && v.Type != "ephemeral") ||
					(v.Type == "persistent-claim" && v.Size == "") {
					p.addf("%s: a JBOD volume needs an id, a type and (persistent) a size", pid)
				}
			}
		case "persistent-claim", "ephemeral":
		default:
			p.addf("%s: storage type %q unknown", pid, np.Spec.Storage.Type)
		}
	}
	if controllers < 3 || controllers%2 == 0 || brokers < 3 {
		p.addf("%s: at least 3 brokers and an odd number (>= 3) of controllers", id)
	}
	t := o.topics[0]
	tid := "KafkaTopic " + t.Name
	if t.Labels["strimzi.io/cluster"] != k.Name {
		p.addf("%s: label strimzi.io/cluster must name %s", tid, k.Name)
	}
	topic := t.Spec.TopicName
	if topic == "" {
		topic = t.Name
	}
	if cm := o.configMaps["parley-config"]; cm == nil || cm.Data["PARLEY_TOPIC"] != topic {
		p.addf("%s: topic %q differs from PARLEY_TOPIC", tid, topic)
	}
	if t.Spec.Replicas == nil || *t.Spec.Replicas != 3 || fmt.Sprint(t.Spec.Config["min.insync.replicas"]) != "2" {
		p.addf("%s: replicas 3 and min.insync.replicas 2 required", tid)
	}
	if t.Spec.Partitions == nil || *t.Spec.Partitions < 1 {
		p.addf("%s: partitions required", tid)
	}
	if t.Spec.Replicas != nil && *t.Spec.Replicas > brokers {
		p.addf("%s: %d replicas but %d brokers", tid, *t.Spec.Replicas, brokers)
	}
}

func (o *objects) checkPostgres(p *problems) {
	if len(o.clusters) != 1 {
		p.addf("one CloudNativePG Cluster expected")
		return
	}
	c := o.clusters[0]
	id := "Cluster " + c.Name
	s := c.Spec
	if s.Instances == nil || *s.Instances < 1 {
		p.addf("%s: instances required", id)
		return
	}
	minS, maxS := 0, 0
	if s.MinSyncReplicas != nil {
		minS = *s.MinSyncReplicas
	}
	if s.MaxSyncReplicas != nil {
		maxS = *s.MaxSyncReplicas
	}
	if minS > maxS || maxS > *s.Instances-1 {
		p.addf("%s: need minSyncReplicas <= maxSyncReplicas <= instances-1", id)
	}
	if s.Storage.Size == "" {
		p.addf("%s: storage.size required", id)
	}
	if s.Bootstrap == nil || s.Bootstrap.Initdb == nil || s.Bootstrap.Initdb.Database == "" {
		p.addf("%s: bootstrap.initdb.database required", id)
	}
	// The store and the pusher read the operator's app Secret.
	for _, w := range o.workloads {
		for _, ct := range w.tmpl.Spec.Containers {
			for _, e := range ct.Env {
				if e.Name == "PARLEY_PG" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
					e.ValueFrom.SecretKeyRef.Name != c.Name+"-app" || e.ValueFrom.SecretKeyRef.Key != "uri") {
					p.addf("%s %s: PARLEY_PG must come from Secret %s-app key uri", w.kind, w.name, c.Name)
				}
			}
		}
	}
}
