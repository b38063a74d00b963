#!/usr/bin/env python3
"""Pre-signs protocol v2 device requests for the wrk scripts (wrk's Lua has no HMAC).

Usage:
  sign.py get DEVICE SECRET PREFIX PATHS_FILE            -> "<path>\t<Authorization value>" per store path
  sign.py checkin DEVICES_FILE COUNT PRODUCT VERSION_ID DIGEST
                                                         -> "<device>\t<Authorization value>" COUNT lines, devices
                                                            round-robin, each device's seq increasing
DEVICES_FILE holds "deviceId secret" per line. Signatures carry the current time: use the output within
Gateway:DeviceClockSkewSeconds (default 300 s). Store GETs are not sequence-checked, so a GET line may be sent many
times; a check-in line is accepted once (a second use is 401 replayed_sequence), so generate more than a run sends.
The canonical form is docs/protocol.md "Device credentials" (src/Messages/Protocol/DeviceRequestSignature.cs).
"""
import base64, hashlib, hmac, sys, time

def request_key(secret):
    # HKDF-SHA256 (RFC 5869) with an empty salt, info "orchestrator/device-request-key/v2", 32 bytes.
    prk = hmac.new(b"\0" * 32, secret.encode(), hashlib.sha256).digest()
    return hmac.new(prk, b"orchestrator/device-request-key/v2" + b"\x01", hashlib.sha256).digest()

def header(key, device, method, target, body, seq, ts):
    canonical = "\n".join(["ORCH-HMAC-SHA256-V2", method, target, device, str(seq), str(ts), hashlib.sha256(body).hexdigest()])
    sig = base64.urlsafe_b64encode(hmac.new(key, canonical.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    return f"Orch-HMAC-SHA256 device={device}, seq={seq}, ts={ts}, sig={sig}"

def main(argv):
    ts = int(time.time())
    seq = int(time.time() * 1000)
    out = sys.stdout
    if argv[1] == "get":
        device, secret, prefix, paths = argv[2], argv[3], argv[4], argv[5]
        key = request_key(secret)
        for line in open(paths):
            p = line.strip()
            if p:
                seq += 1
                out.write(f"{p}\t{header(key, device, 'GET', prefix + p, b'', seq, ts)}\n")
    elif argv[1] == "checkin":
        devices = [l.split() for l in open(argv[2]) if l.strip()]
        count, product, version_id, digest = int(argv[3]), argv[4], argv[5], argv[6]
        body = ('{"product":"%s","installedVersionId":%s,"inventoryDigest":"%s","files":[]}' % (product, version_id, digest)).encode()
        keys = [(d, request_key(s)) for d, s in devices]
        for i in range(count):
            device, key = keys[i % len(keys)]
            seq += 1
            out.write(f"{device}\t{header(key, device, 'POST', f'/v1/devices/{device}/check-in', body, seq, ts)}\n")
    else:
        sys.exit(__doc__)

if __name__ == "__main__":
    main(sys.argv)
