// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The kubelet's own gRPC transport against volmgr-csi: grpc-go (Debian's
// golang-google-grpc-dev), dialled as pkg/volume/csi/csi_client.go
// newGrpcConn dials a node plugin -- insecure, a unix-socket context
// dialer, authority "localhost", a new connection per call, closed
// afterwards -- so the HTTP/2 that volmgr-csi serves is checked against
// the implementation the kubelet and node-driver-registrar use (its
// SETTINGS, WINDOW_UPDATEs, BDP PINGs, header framing and trailers), not
// only against grpcio (tests/csi/kubelet.py).
//
// The messages are encoded by hand with protowire (the field numbers of
// volmgr/csi/csi-node.proto, the spec's), passed through a codec that
// registers itself as "proto", so requests carry the kubelet's
// content-type, application/grpc.
//
//	kubelet-go -sock PATH -root KUBELET_ROOT -source cache:NAME -readme TEXT
//
// runs the scenario below, prints "# ok: ..." per check and "# FAILED:
// ..." per failure, and exits 1 if anything failed.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec passes messages through as bytes, under the proto codec's
// name: the call then goes out as application/grpc, as the kubelet's.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var (
	sock   = flag.String("sock", "", "volmgr-csi's socket")
	root   = flag.String("root", "", "the kubelet's root directory")
	source = flag.String("source", "", "the source attribute (cache:NAME)")
	readme = flag.String("readme", "", "the cache's README content")
	failed = 0
	mu     sync.Mutex
)

func ok(format string, a ...interface{}) {
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("# ok: "+format+"\n", a...)
}

func fail(format string, a ...interface{}) {
	mu.Lock()
	defer mu.Unlock()
	failed++
	fmt.Printf("# FAILED: "+format+"\n", a...)
}

// call dials volmgr-csi as csi_client.go newGrpcConn does, makes one
// unary call with the kubelet's 2-minute deadline (csiTimeout), and
// closes the connection.
func call(method string, req []byte, timeout time.Duration) ([]byte, error) {
	conn, err := grpc.Dial(*sock,
		grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, target string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", target)
		}),
		grpc.WithAuthority("localhost"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var resp []byte
	err = conn.Invoke(ctx, method, &req, &resp)
	return resp, err
}

// ---- the messages (csi-node.proto's field numbers)

func str(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func msg(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

type publish struct {
	volumeID, target, fsType string
	mode                     uint64
	readonly                 bool
	context                  map[string]string
}

func (p publish) encode() []byte {
	var b []byte
	b = str(b, 1, p.volumeID)
	b = str(b, 4, p.target)
	var mount []byte
	mount = str(mount, 1, p.fsType)
	var mode []byte
	mode = protowire.AppendTag(mode, 1, protowire.VarintType)
	mode = protowire.AppendVarint(mode, p.mode)
	var capb []byte
	capb = msg(capb, 2, mount)
	capb = msg(capb, 3, mode)
	b = msg(b, 5, capb)
	if p.readonly {
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	for k, v := range p.context {
		var e []byte
		e = str(e, 1, k)
		e = str(e, 2, v)
		b = msg(b, 8, e)
	}
	return b
}

// fields: the top-level fields of m, by number (the last of each).
func fields(m []byte) map[protowire.Number][][]byte {
	out := map[protowire.Number][][]byte{}
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return out
		}
		m = m[n:]
		switch typ {
		case protowire.BytesType:
			v, k := protowire.ConsumeBytes(m)
			if k < 0 {
				return out
			}
			out[num] = append(out[num], v)
			m = m[k:]
		case protowire.VarintType:
			v, k := protowire.ConsumeVarint(m)
			if k < 0 {
				return out
			}
			out[num] = append(out[num], protowire.AppendVarint(nil, v))
			m = m[k:]
		default:
			k := protowire.ConsumeFieldValue(num, typ, m)
			if k < 0 {
				return out
			}
			m = m[k:]
		}
	}
	return out
}

func varint(b []byte) uint64 {
	v, _ := protowire.ConsumeVarint(b)
	return v
}

// ---- the kubelet's steps (pkg/volume/csi/csi_mounter.go SetUpAt)

const (
	podName      = "csi.storage.k8s.io/pod.name"
	podNamespace = "csi.storage.k8s.io/pod.namespace"
	podUID       = "csi.storage.k8s.io/pod.uid"
	podSA        = "csi.storage.k8s.io/serviceAccount.name"
	ephemeral    = "csi.storage.k8s.io/ephemeral"
	driver       = "volmgr.csi.volmgr.io"
)

func handle(uid, vol string) string {
	h := sha256.Sum256([]byte(uid + vol))
	return "csi-" + hex.EncodeToString(h[:])
}

func volDir(uid, vol string) string {
	return filepath.Join(*root, "pods", uid, "volumes", "kubernetes.io~csi", vol)
}

// setUp: MkdirAll of the volume directory (not mount/), NodeGetCapabilities,
// vol_data.json, NodeGetCapabilities, NodePublishVolume.
func setUp(uid, vol string, readonly bool) (string, error) {
	dir := volDir(uid, vol)
	if err := os.MkdirAll(dir, 0750); err != nil {
		return "", err
	}
	if _, err := call("/csi.v1.Node/NodeGetCapabilities", []byte{}, 2*time.Minute); err != nil {
		return "", err
	}
	// csi_attacher.go getAttachmentName: sha256(handle + driver + node).
	att := sha256.Sum256([]byte(handle(uid, vol) + driver + "node-a"))
	data, _ := json.Marshal(map[string]string{
		"specVolID": vol, "volumeHandle": handle(uid, vol), "driverName": driver,
		"nodeName": "node-a", "volumeLifecycleMode": "Ephemeral",
		"attachmentID": "csi-" + hex.EncodeToString(att[:]),
	})
	if err := os.WriteFile(filepath.Join(dir, "vol_data.json"), data, 0640); err != nil {
		return "", err
	}
	if _, err := call("/csi.v1.Node/NodeGetCapabilities", []byte{}, 2*time.Minute); err != nil {
		return "", err
	}
	target := filepath.Join(dir, "mount")
	p := publish{volumeID: handle(uid, vol), target: target, mode: 1, readonly: readonly,
		context: map[string]string{"source": *source, podName: "go-" + uid[:8],
			podNamespace: "ci", podUID: uid, podSA: "default", ephemeral: "true"}}
	_, err := call("/csi.v1.Node/NodePublishVolume", p.encode(), 2*time.Minute)
	return target, err
}

// tearDown: NodeUnpublishVolume, then removeMountDir (mount/ if it is not
// a mount point, vol_data.json, the volume directory).
func tearDown(uid, vol string) error {
	dir := volDir(uid, vol)
	target := filepath.Join(dir, "mount")
	var b []byte
	b = str(b, 1, handle(uid, vol))
	b = str(b, 2, target)
	if _, err := call("/csi.v1.Node/NodeUnpublishVolume", b, 2*time.Minute); err != nil {
		return err
	}
	if likelyNotMountPoint(target) {
		os.Remove(target)
	}
	os.Remove(filepath.Join(dir, "vol_data.json"))
	os.Remove(dir)
	return nil
}

// likelyNotMountPoint: mount-utils IsLikelyNotMountPoint, st_dev against
// the parent's.
func likelyNotMountPoint(path string) bool {
	var a, b syscall.Stat_t
	if syscall.Lstat(path, &a) != nil || syscall.Lstat(filepath.Dir(path), &b) != nil {
		return true
	}
	return a.Dev == b.Dev
}

func code(err error) codes.Code { return status.Code(err) }

func expectCode(what string, err error, want codes.Code) {
	if code(err) != want {
		fail("%s: expected %v, got %v (%v)", what, want, code(err), err)
		return
	}
	ok("%s -> %v", what, code(err))
}

func main() {
	flag.Parse()
	encoding.RegisterCodec(rawCodec{})

	// node-driver-registrar: GetPluginInfo with its 1 s default timeout
	// (cmd/csi-node-driver-registrar/main.go), then the kubelet's
	// RegisterPlugin: NodeGetInfo.
	resp, err := call("/csi.v1.Identity/GetPluginInfo", []byte{}, time.Second)
	if err != nil {
		fail("GetPluginInfo: %v", err)
	} else if name := fields(resp)[1]; len(name) != 1 || string(name[0]) != driver {
		fail("GetPluginInfo: name %q", name)
	} else {
		ok("GetPluginInfo (grpc-go, 1 s deadline): %s", name[0])
	}
	resp, err = call("/csi.v1.Node/NodeGetInfo", []byte{}, 2*time.Minute)
	if err != nil || len(fields(resp)[1]) != 1 {
		fail("NodeGetInfo: %v", err)
	} else {
		ok("NodeGetInfo: node_id %s", fields(resp)[1][0])
	}
	resp, err = call("/csi.v1.Identity/Probe", []byte{}, 2*time.Minute)
	if ready := fields(resp)[1]; err != nil || len(ready) != 1 || varint(fields(ready[0])[1][0]) != 1 {
		fail("Probe: %v", err)
	} else {
		ok("Probe: ready")
	}

	// A pod: publish, what the containers see, stats, a repeat, a conflict.
	uid := fmt.Sprintf("go-%d-0000-0000-0000-000000000000", os.Getpid())
	target, err := setUp(uid, "ws", false)
	expectCode("pod set-up (NodeGetCapabilities x2, NodePublishVolume)", err, codes.OK)
	if err == nil {
		if likelyNotMountPoint(target) {
			fail("the target is not a mount point by the kubelet's st_dev test")
		} else {
			ok("the target is a mount point by the kubelet's st_dev test")
		}
		if got, e := os.ReadFile(filepath.Join(target, "README")); e != nil || string(got) != *readme {
			fail("README in the target: %q (%v)", got, e)
		} else {
			ok("the cache's README is in the target")
		}
		var b []byte
		b = str(b, 1, handle(uid, "ws"))
		b = str(b, 2, target)
		resp, err = call("/csi.v1.Node/NodeGetVolumeStats", b, 2*time.Minute)
		usage := fields(resp)[1]
		if err != nil || len(usage) == 0 || varint(fields(usage[0])[4][0]) != 1 {
			fail("NodeGetVolumeStats: %v, %d usage entries", err, len(usage))
		} else {
			ok("NodeGetVolumeStats: BYTES total %d", varint(fields(usage[0])[2][0]))
		}
		_, err = setUp(uid, "ws", false)
		expectCode("the same set-up again (the kubelet's retry)", err, codes.OK)
		_, err = setUp(uid, "ws", true)
		expectCode("read-only flipped", err, codes.AlreadyExists)
		expectCode("tear-down", tearDown(uid, "ws"), codes.OK)
		if _, e := os.Lstat(target); !os.IsNotExist(e) {
			fail("the target is still there after tear-down")
		} else {
			ok("the target is gone after tear-down")
		}
		expectCode("tear-down again", tearDown(uid, "ws"), codes.OK)
	}

	// Refusals, with grpc-go's status decoding of Trailers-Only answers.
	p := publish{volumeID: "", target: filepath.Join(volDir(uid, "x"), "mount"), mode: 1,
		context: map[string]string{ephemeral: "true"}}
	_, err = call("/csi.v1.Node/NodePublishVolume", p.encode(), 2*time.Minute)
	expectCode("NodePublishVolume without a volume id", err, codes.InvalidArgument)
	if s, _ := status.FromError(err); s == nil || s.Message() == "" {
		fail("the refusal has no message")
	} else {
		ok("its message: %s", s.Message())
	}
	p = publish{volumeID: handle(uid, "x"), target: p.target, mode: 1, fsType: "ext4",
		context: map[string]string{ephemeral: "true"}}
	_, err = call("/csi.v1.Node/NodePublishVolume", p.encode(), 2*time.Minute)
	expectCode("NodePublishVolume with fsType ext4", err, codes.InvalidArgument)
	_, err = call("/csi.v1.Node/NodeStageVolume", []byte{}, 2*time.Minute)
	expectCode("NodeStageVolume", err, codes.Unimplemented)

	// 20 pods at once, each call on a connection of its own.
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			u := fmt.Sprintf("go%02d-%d-0000-0000-0000-000000000000", i, os.Getpid())
			if _, e := setUp(u, "ws", false); e != nil {
				errs[i] = e
				return
			}
			errs[i] = tearDown(u, "ws")
		}(i)
	}
	wg.Wait()
	n := 0
	for i, e := range errs {
		if e != nil {
			fail("pod %d of 20: %v", i, e)
		} else {
			n++
		}
	}
	if n == 20 {
		ok("20 pods set up and torn down at once through grpc-go")
	}
	if failed > 0 {
		fmt.Printf("# kubelet-go: %d check(s) FAILED\n", failed)
		os.Exit(1)
	}
	fmt.Println("# kubelet-go: all checks passed")
}
