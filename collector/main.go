// Command otelcol-bridge is a minimal OpenTelemetry Collector for tests on
// loopback: OTLP receiver (gRPC + HTTP), batch processor, file and debug
// exporters. Every collector module is pinned to one release (core v0.161.0 /
// v1.67.0, contrib v0.161.0) in go.mod.
//
// Run: otelcol-bridge --config=FILE.yaml   (file: and env: URIs are supported,
// and ${env:VAR} works inside the config).
package main

import (
	"log"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// components lists the factories compiled into this binary.
func components() (otelcol.Factories, error) {
	var err error
	// The service needs a telemetry factory; this is the standard one
	// (configured by service.telemetry in the YAML).
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
	); err != nil {
		return f, err
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
	); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		fileexporter.NewFactory(),
		debugexporter.NewFactory(),
	)
	return f, err
}

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-bridge",
			Description: "Minimal OpenTelemetry Collector for loopback tests",
			Version:     "0.161.0",
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// file: for --config paths, env: for ${env:VAR} expansion.
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
				},
				DefaultScheme: "env", // a bare ${VAR} means ${env:VAR}
			},
		},
	}
	// NewCommand handles flags, config loading, and SIGINT/SIGTERM shutdown.
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatalf("otelcol-bridge: %v", err)
	}
}
