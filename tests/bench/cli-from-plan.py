#!/usr/bin/env python3
"""Writes the plain docker-CLI scripts a user would write by hand to build the same chain as a
vnet-te plan on a multi-node swarm: overlay networks on the manager, then on every node (in
parallel, one script per node) bridge LANs, `docker create` with the static addresses,
`docker network connect` for the other links, `docker cp` of the rendered configs, and
`docker start`. Engines from Docker 25 (API 1.44) refuse to start a container on a worker whose
later overlays are attached before its first one is known there ("could not find a network
matching network mode"): on those the scripts connect the later networks after the start, one
after another (a job per container at once made the manager miss its 20 s attach deadline
for several of them). Used only by tests/bench/cluster-vs-cli.sh.

usage: cli-from-plan.py PLAN.json RENDER_DIR OUT_DIR NODE_DIR
RENDER_DIR is `vnet-te path render` output (flat, one folder per container); writes
OUT_DIR/manager.sh, OUT_DIR/node-<name>.sh and OUT_DIR/tree/<container>/etc/... (the files
at their paths inside the container), which the scripts expect at NODE_DIR/tree on the nodes.
"""
import json
import os
import shlex
import shutil
import sys

plan = json.load(open(sys.argv[1]))
flat = sys.argv[2]
out_dir = sys.argv[3]
render = sys.argv[4] + "/tree"
WHERE = {"frr.conf": "etc/frr", "zebra.conf": "etc/frr", "daemons": "etc/frr", "vtysh.conf": "etc/frr",
         "boot.sh": "etc/vnet-te", "setup.sh": "etc/vnet-te"}
for c in os.listdir(flat):
    if not os.path.isdir(os.path.join(flat, c)):
        continue
    for f in os.listdir(os.path.join(flat, c)):
        if f not in WHERE:
            continue
        d = os.path.join(out_dir, "tree", c, WHERE[f])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(flat, c, f), os.path.join(d, f))
        os.chmod(os.path.join(d, f), 0o755 if f.endswith(".sh") else 0o644)
q = shlex.quote
PREFIX = "cli-"

manager = ["#!/bin/sh", "set -e"]
per_node = {}


late = {}  # node -> one shell line per container: its later connects, run after the start


def node_script(node):
    return per_node.setdefault(node, ["#!/bin/sh", "set -e",
                                      # 1 on engines that check the network mode at start (API 1.44 on)
                                      "LATE=$(docker version -f '{{.Server.APIVersion}}' | "
                                      "awk -F. '{ print ($1 > 1 || $2 >= 44) ? 1 : 0 }')",
                                      "iptables -C DOCKER-USER -i vte+ -o vte+ -m physdev --physdev-is-bridged -j ACCEPT 2>/dev/null ||"
                                      " iptables -I DOCKER-USER -i vte+ -o vte+ -m physdev --physdev-is-bridged -j ACCEPT"])


for n in plan["networks"]:
    args = (f"--internal --subnet {q(n['subnet'])} --gateway {q(n['gateway'])} "
            f"--ip-range {q(n['ip_range'])} --label bench=cli")
    if n["driver"] == "overlay":
        manager.append(f"docker network create -d overlay --attachable {args} {q(PREFIX + n['name'])} >/dev/null")
    else:
        for node in n["nodes"]:
            node_script(node).append(
                f"docker network create -d bridge {args} -o com.docker.network.bridge.name={q(n['bridge'])} "
                f"{q(PREFIX + n['name'])} >/dev/null")

ROUTER_RUN = ("--cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_ADMIN --sysctl net.ipv4.ip_forward=1 "
              "--sysctl net.ipv4.icmp_errors_use_inbound_ifaddr=1 --sysctl net.ipv4.conf.all.rp_filter=0 "
              "--sysctl net.ipv4.ip_default_ttl=255 --sysctl net.ipv4.icmp_ratemask=4120 "
              "--label bench=cli")
for r in plan["routers"]:
    s = node_script(r["node"])
    name = PREFIX + r["container"]
    first, rest = r["interfaces"][0], r["interfaces"][1:]
    s.append(f"docker create --name {q(name)} --hostname {q(r['name'])} {ROUTER_RUN} "
             f"--network {q(PREFIX + first['network'])} --ip {q(first['address'])} "
             f"vnet-te/router:0.1.0 /bin/bash /etc/vnet-te/boot.sh >/dev/null")
    connects = [f"docker network connect --ip {q(i['address'])} {q(PREFIX + i['network'])} {q(name)}" for i in rest]
    if connects:
        s.append(f"if [ \"$LATE\" = 0 ]; then {'; '.join(connects)}; fi")
        late.setdefault(r["node"], []).extend(connects)
    s.append(f"docker cp {q(render + '/' + r['name'] + '/.')} {q(name + ':/')}")
for h in plan["hosts"]:
    s = node_script(h["node"])
    name = PREFIX + h["container"]
    s.append(f"docker create --name {q(name)} --hostname {q(h['name'])} --cap-add NET_ADMIN --cap-add NET_RAW "
             f"--sysctl net.ipv4.ip_default_ttl=255 --label bench=cli --network {q(PREFIX + h['network'])} --ip {q(h['address'])} "
             f"vnet-te/host:0.1.0 /bin/bash /etc/vnet-te/boot.sh >/dev/null")
    s.append(f"docker cp {q(render + '/' + h['name'] + '/.')} {q(name + ':/')}")
for node, s in per_node.items():
    s.append("docker ps -aq --filter label=bench=cli --filter status=created | xargs -r docker start >/dev/null")
    if late.get(node):
        s.append('if [ "$LATE" = 1 ]; then')
        s.extend("    " + line for line in late[node])
        s.append("fi")

os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "manager.sh"), "w") as f:
    f.write("\n".join(manager) + "\n")
for node, s in per_node.items():
    with open(os.path.join(out_dir, f"node-{node}.sh"), "w") as f:
        f.write("\n".join(s) + "\n")
