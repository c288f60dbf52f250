// Command edgetel-release builds edgetel's release artifacts from binaries built by the Makefile
// (dist/bin/<os>_<arch>/<name>) without a container engine: archives with SBOMs and checksums,
// multi-platform OCI images (in OCI image layouts), the chart's values pinned to the images'
// digests, and the push of the images to a registry. `make release-snapshot` and `make release`
// run it; see the README's Releases section.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "edgetel-release:", err)
		os.Exit(1)
	}
}

const usage = `usage: edgetel-release <command> [flags]
  images        build the multi-platform images into <out>/oci/<name> and <out>/images.json
  dist          archives, SBOMs and checksums.txt of the binaries
  chart-values  pin the chart's edgetel images to the digests in images.json
  push          push <dist>/oci/* to a registry
  base-diffid   print the base layer's diff ID (the value BASE_DIFFID pins)`

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	var m meta
	var created int64
	addMeta := func() {
		fs.StringVar(&m.Version, "version", "", "release version (SemVer, no leading v)")
		fs.StringVar(&m.Revision, "revision", "", "source revision (git commit)")
		fs.StringVar(&m.Source, "source", "https://github.com/edgetel/edgetel", "source repository URL")
		fs.StringVar(&m.Licenses, "licenses", "", "SPDX license expression")
		fs.Int64Var(&created, "created", 0, "creation time, Unix seconds (SOURCE_DATE_EPOCH: the commit's time)")
	}
	checkMeta := func() error {
		m.Created = time.Unix(created, 0).UTC()
		for flagName, v := range map[string]string{"version": m.Version, "revision": m.Revision, "licenses": m.Licenses} {
			if v == "" {
				return fmt.Errorf("-%s is required", flagName)
			}
		}
		if strings.HasPrefix(m.Version, "v") {
			return fmt.Errorf("-version %q: give the SemVer without the leading v", m.Version)
		}
		return nil
	}
	switch args[0] {
	case "images":
		addMeta()
		bin := fs.String("bin", "dist/bin", "binaries, in <os>_<arch>[variant]/<name>")
		out := fs.String("out", "dist", "output directory")
		names := fs.String("names", "edgetelcol,edgetel-query,edgetel-onboard", "commands to make images of")
		plats := fs.String("platforms", "linux/amd64,linux/arm64,linux/arm/v7", "image platforms")
		pinned := fs.String("base-diffid", "", "the base layer's expected diff ID (sha256:...)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := checkMeta(); err != nil {
			return err
		}
		ps, err := parsePlatforms(*plats)
		if err != nil {
			return err
		}
		recs, err := buildImages(strings.Split(*names, ","), *bin, *out, ps, *pinned, m)
		if err != nil {
			return err
		}
		for _, r := range recs {
			fmt.Printf("%s:%s@%s\n", r.Name, r.Tag, r.Digest)
			for _, p := range r.Platforms {
				fmt.Printf("  %-14s %s %6.1f MiB\n", p.Platform, p.Digest, float64(p.Bytes)/(1<<20))
			}
		}
		return nil
	case "dist":
		addMeta()
		bin := fs.String("bin", "dist/bin", "binaries, in <os>_<arch>[variant]/<name>")
		out := fs.String("out", "dist", "output directory")
		readme := fs.String("readme", "README.md", "README to put in each archive")
		license := fs.String("license", "LICENSE", "licence text to put in each archive")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := checkMeta(); err != nil {
			return err
		}
		files, err := archives(*bin, *out, []string{*readme, *license}, m)
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(files, "\n"))
		return nil
	case "chart-values":
		images := fs.String("images", "dist/images.json", "images.json of `images`")
		prefix := fs.String("prefix", "", "registry and path the images are published under, e.g. ghcr.io/edgetel")
		values := fs.String("values", "", "the chart's values.yaml to rewrite (a copy: the tree's stays unpinned)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *prefix == "" || *values == "" {
			return fmt.Errorf("-prefix and -values are required")
		}
		recs, err := readImageRecords(*images)
		if err != nil {
			return err
		}
		return pinChartImages(*values, *prefix, recs)
	case "push":
		dist := fs.String("dist", "dist", "directory of images.json and oci/")
		prefix := fs.String("prefix", "", "registry and path, e.g. ghcr.io/edgetel")
		insecure := fs.Bool("insecure", false, "allow plain HTTP (a registry on loopback)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *prefix == "" {
			return fmt.Errorf("-prefix is required")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		refs, err := push(ctx, *dist, *prefix, *insecure)
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(refs, "\n"))
		return nil
	case "base-diffid":
		l, err := baseLayer("")
		if err != nil {
			return err
		}
		d, err := l.DiffID()
		if err != nil {
			return err
		}
		fmt.Println(d)
		return nil
	}
	return fmt.Errorf("unknown command %s\n%s", strconv.Quote(args[0]), usage)
}
