// The reference: Go's own expvar handler serving the variables a spec file names.
// Built and run by tests/exporters/expvar/test_go_conformance.py and the benchmarks.
package main

import (
	"encoding/json"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
)

type Spec struct {
	Floats  []float64
	Strings []string
	Ints    []int64
	MapKeys []string
	Maps    int
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	specFile := flag.String("spec", "", "JSON spec of the variables")
	flag.Parse()
	data, err := os.ReadFile(*specFile)
	if err != nil {
		panic(err)
	}
	var spec Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		panic(err)
	}
	for i, f := range spec.Floats {
		expvar.NewFloat(fmt.Sprintf("float_%04d", i)).Set(f)
	}
	for i, s := range spec.Strings {
		expvar.NewString(fmt.Sprintf("string_%04d", i)).Set(s)
	}
	for i, n := range spec.Ints {
		expvar.NewInt(fmt.Sprintf("int_%04d", i)).Set(n)
	}
	m := expvar.NewMap("map")
	for i, k := range spec.MapKeys {
		m.Add(k, int64(i))
	}
	m.AddFloat("float", 1.5)
	inner := new(expvar.Map).Init()
	inner.Add("a", 1)
	m.Set("nested", inner)
	for i := 0; i < spec.Maps; i++ {
		metric := expvar.NewMap(fmt.Sprintf("metric_%03d", i))
		metric.Add("count", int64(i))
		metric.AddFloat("sum", float64(i)*1.5)
	}
	expvar.Publish("func_floats", expvar.Func(func() any { return spec.Floats }))
	expvar.Publish("func_map", expvar.Func(func() any {
		return map[string]any{"b": 2, "a": []string{"x<y&z"}, "c": nil}
	}))
	runtime.GC()
	runtime.GC()
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		panic(err)
	}
	fmt.Println(listener.Addr().String())
	http.Serve(listener, nil)
}
