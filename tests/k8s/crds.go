// The shapes of the Strimzi and CloudNativePG resources parley uses: the
// fields of their CRDs (kafka.strimzi.io/v1beta2, postgresql.cnpg.io/v1)
// down to the level parley sets, decoded strictly, so a misspelt or
// misplaced field fails here as it would at the API server. Deeper parts
// are kept as free maps.
package main

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type anyMap = map[string]any

type strimziListener struct {
	Name               string                           `json:"name"`
	Port               int                              `json:"port"`
	Type               string                           `json:"type"`
	TLS                bool                             `json:"tls"`
	Authentication     anyMap                           `json:"authentication,omitempty"`
	Configuration      anyMap                           `json:"configuration,omitempty"`
	NetworkPolicyPeers []networkingv1.NetworkPolicyPeer `json:"networkPolicyPeers,omitempty"`
}

type strimziKafka struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Kafka struct {
			Version         string                       `json:"version"`
			MetadataVersion string                       `json:"metadataVersion,omitempty"`
			Listeners       []strimziListener            `json:"listeners"`
			Config          anyMap                       `json:"config,omitempty"`
			Authorization   anyMap                       `json:"authorization,omitempty"`
			Resources       *corev1.ResourceRequirements `json:"resources,omitempty"`
			JvmOptions      anyMap                       `json:"jvmOptions,omitempty"`
			Rack            anyMap                       `json:"rack,omitempty"`
			MetricsConfig   anyMap                       `json:"metricsConfig,omitempty"`
			Logging         anyMap                       `json:"logging,omitempty"`
			Template        anyMap                       `json:"template,omitempty"`
		} `json:"kafka"`
		EntityOperator *struct {
			TopicOperator anyMap `json:"topicOperator,omitempty"`
			UserOperator  anyMap `json:"userOperator,omitempty"`
			Template      anyMap `json:"template,omitempty"`
		} `json:"entityOperator,omitempty"`
		CruiseControl anyMap `json:"cruiseControl,omitempty"`
		KafkaExporter anyMap `json:"kafkaExporter,omitempty"`
	} `json:"spec"`
}

type strimziVolume struct {
	ID            *int   `json:"id"`
	Type          string `json:"type"`
	Size          string `json:"size,omitempty"`
	Class         string `json:"class,omitempty"`
	DeleteClaim   *bool  `json:"deleteClaim,omitempty"`
	KraftMetadata string `json:"kraftMetadata,omitempty"`
	SizeLimit     string `json:"sizeLimit,omitempty"`
}

type strimziNodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas *int     `json:"replicas"`
		Roles    []string `json:"roles"`
		Storage  struct {
			Type    string          `json:"type"`
			Volumes []strimziVolume `json:"volumes,omitempty"`
		} `json:"storage"`
		Resources  *corev1.ResourceRequirements `json:"resources,omitempty"`
		JvmOptions anyMap                       `json:"jvmOptions,omitempty"`
		Template   anyMap                       `json:"template,omitempty"`
	} `json:"spec"`
}

type strimziTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		TopicName  string `json:"topicName,omitempty"`
		Partitions *int   `json:"partitions"`
		Replicas   *int   `json:"replicas"`
		Config     anyMap `json:"config,omitempty"`
	} `json:"spec"`
}

type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Instances             *int   `json:"instances"`
		ImageName             string `json:"imageName,omitempty"`
		PrimaryUpdateStrategy string `json:"primaryUpdateStrategy,omitempty"`
		MinSyncReplicas       *int   `json:"minSyncReplicas,omitempty"`
		MaxSyncReplicas       *int   `json:"maxSyncReplicas,omitempty"`
		Bootstrap             *struct {
			Initdb *struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
				Secret   anyMap `json:"secret,omitempty"`
			} `json:"initdb,omitempty"`
		} `json:"bootstrap,omitempty"`
		PostgreSQL *struct {
			// CloudNativePG takes every parameter as a string.
			Parameters map[string]string `json:"parameters,omitempty"`
		} `json:"postgresql,omitempty"`
		Storage struct {
			Size         string `json:"size"`
			StorageClass string `json:"storageClass,omitempty"`
		} `json:"storage"`
		Resources  *corev1.ResourceRequirements `json:"resources,omitempty"`
		Monitoring *struct {
			EnablePodMonitor bool `json:"enablePodMonitor"`
		} `json:"monitoring,omitempty"`
		Affinity anyMap `json:"affinity,omitempty"`
		Backup   anyMap `json:"backup,omitempty"`
	} `json:"spec"`
}
