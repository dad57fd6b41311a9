#!/usr/bin/env python3
"""Writes the docker-compose file a user would write by hand for the same chain as a vnet-te
plan: same images, capabilities, sysctls, internal networks, addresses and configs (bind
mounted from `vnet-te path render` output). Used only by single-host-vs-compose.sh.

usage: compose-from-plan.py PLAN.json RENDER_DIR > docker-compose.yml
"""
import json
import sys

plan = json.load(open(sys.argv[1]))
render = sys.argv[2]
out = ['version: "2.4"', "services:"]
for r in plan["routers"]:
    out += [f"  {r['name']}:", f"    image: vnet-te/router:0.1.0", f"    container_name: cmp-{r['name']}",
            f"    hostname: {r['name']}", "    cap_add: [NET_ADMIN, NET_RAW, SYS_ADMIN]",
            "    sysctls:", "      net.ipv4.ip_forward: 1", "      net.ipv4.icmp_errors_use_inbound_ifaddr: 1",
            "      net.ipv4.conf.all.rp_filter: 0", "      net.ipv4.ip_default_ttl: 255",
            "      net.ipv4.icmp_ratemask: 4120",
            "    command: [/bin/bash, /etc/vnet-te/boot.sh]", "    volumes:"]
    for f in ["frr.conf", "zebra.conf", "daemons", "vtysh.conf"]:
        out.append(f"      - {render}/{r['name']}/{f}:/etc/frr/{f}")
    out.append(f"      - {render}/{r['name']}/boot.sh:/etc/vnet-te/boot.sh")
    out.append("    networks:")
    for i in r["interfaces"]:
        out += [f"      {i['network']}:", f"        ipv4_address: {i['address']}"]
for h in plan["hosts"]:
    out += [f"  {h['name']}:", "    image: vnet-te/host:0.1.0", f"    container_name: cmp-{h['name']}",
            "    cap_add: [NET_ADMIN, NET_RAW]", "    sysctls:", "      net.ipv4.ip_default_ttl: 255",
            "    command: [/bin/bash, /etc/vnet-te/boot.sh]", "    volumes:",
            f"      - {render}/{h['name']}/boot.sh:/etc/vnet-te/boot.sh",
            f"      - {render}/{h['name']}/setup.sh:/etc/vnet-te/setup.sh",
            "    networks:", f"      {h['network']}:", f"        ipv4_address: {h['address']}"]
out.append("networks:")
for n in plan["networks"]:
    out += [f"  {n['name']}:", "    internal: true", "    driver_opts:",
            f"      com.docker.network.bridge.name: {n['bridge']}", "    ipam:", "      config:",
            f"        - subnet: {n['subnet']}", f"          gateway: {n['gateway']}",
            f"          ip_range: {n['ip_range']}"]
print("\n".join(out))
