#!/usr/bin/env python3
"""A FAKE Kubernetes API server for Assay's tests.

No Kubernetes API server can be had on the machines Assay is built on, so the tests of
assay-kube (CRD mode, the TestTrigger watcher, the Job runtime) talk to this fake instead.
It is NOT Kubernetes: it keeps objects in memory and serves them the way the API server's
REST interface does, closely enough for the `kube` crate's client and watcher and for
`kubectl create/apply/patch/delete/get`, and no further.

Built on kmock (PyPI), which gives the HTTP server, the parsing of Kubernetes URLs and the
discovery documents (`/api`, `/apis`, `/apis/GROUP/VERSION`) of the built-in kinds. kmock's
own object store is too loose for a watcher (no resourceVersion, no uid, no creationTimestamp,
lists without `kind`, merges where Kubernetes replaces, every watch replays everything), so
the objects live here, in `Store`, with those semantics:

* every write stamps `metadata.resourceVersion` (one counter for the whole server), a new
  object also `uid`, `creationTimestamp` and `generation` (bumped when `spec` changes);
* list answers carry `kind: FooList` and the list's resourceVersion; a watch from a
  resourceVersion replays only the events after it (`410 Gone` when that is too old), a watch
  without one starts with ADDED for what exists; `timeoutSeconds` ends a watch;
* `labelSelector` (=, ==, !=, in, notin, exists, !exists) and `fieldSelector`
  (metadata.name, metadata.namespace) on list and watch;
* POST creates (409 when it exists, `generateName` works), PUT replaces (409 on a stale
  resourceVersion), PATCH takes JSON merge patch, JSON patch, server-side apply (as a merge)
  and strategic merge patch (APPROXIMATED: lists of objects with a `name` merge by name, in
  `$setElementOrder` order; other `$` directives are dropped), DELETE removes at once
  (finalizers are not honoured);
* creating a CustomResourceDefinition serves its resource (like `kubectl apply -f crds/`);
* JSON bodies only: `kubectl create deployment ...` sends protobuf, which kmock cannot read
  (use `kubectl apply -f`); no OpenAPI schemas, so kubectl needs `--validate=false`.

Usage (the tests start it as a process):

    python fake_api.py --kubeconfig PATH [--port P] [--namespace NS] [--crd FILE]...

It prints one line `FAKE_KUBE_API http://127.0.0.1:PORT` on stdout once it listens, and
writes a kubeconfig for that URL (context `fake`, namespace NS, default `default`).

The control channel, beside the Kubernetes API itself (use kubectl or plain HTTP):

* `POST /fake/apply` with JSON (or YAML, several documents) manifests: create each object,
  or replace it when it exists (stamped as above, watch events sent) — no plurals needed;
* `POST /fake/drop-watches`: end every open watch, as when the API server restarts;
* `GET /fake/objects`: every stored object, for assertions.

Where more goes: a kubelet simulation (pods going through phases, their logs) belongs in a
`Kubelet`-like class that subscribes with `Store.subscribe` and writes through `Store.put`,
and the pod subresources (`log`, `exec`) in `FakeApi.serve_subresource`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import json
import re
import sys
import time
import uuid
from collections import deque
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import parsing, references  # kmock's URL parser and resource key type

try:
    import yaml  # optional: YAML bodies for /fake/apply
except ImportError:  # pragma: no cover
    yaml = None
YAML_ERRORS = (yaml.YAMLError,) if yaml is not None else ()

# How many past events a watch can resume from (a real API server keeps about 5 minutes).
EVENT_HISTORY = 10_000


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def now_nano() -> str:
    """Now as RFC3339 with nine fraction digits (a log line's time with `timestamps=true`)."""
    ns = time.time_ns()
    seconds = datetime.datetime.fromtimestamp(ns // 1_000_000_000, tz=datetime.UTC)
    return seconds.strftime('%Y-%m-%dT%H:%M:%S') + f'.{ns % 1_000_000_000:09d}Z'


def status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    """A Kubernetes `Status` error answer."""
    return aiohttp.web.json_response({
        'apiVersion': 'v1', 'kind': 'Status', 'metadata': {}, 'status': 'Failure',
        'code': code, 'reason': reason, 'message': message,
    }, status=code)


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


# --- URLs --------------------------------------------------------------------------------------

def parse_path(path: str) -> parsing.ParsedPath:
    """Kubernetes' URL grammar, `/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]` and
    `/apis/GROUP/VERSION/...`. Replaces kmock's parser (0.8), which fails on the namespaces
    resource itself (`/api/v1/namespaces`, `/api/v1/namespaces/NAME`)."""
    parts = [p for p in path.split('/') if p]
    if len(parts) >= 2 and parts[0] == 'api':
        group, version, rest = '', parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == 'apis':
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == 'apis':
        return parsing.ParsedPath(parts[1], None, None, None, None, None)
    else:
        return parsing.ParsedPath(None, None, None, None, None, None)
    namespace = None
    is_namespace_object = len(rest) <= 2 or (len(rest) == 3 and rest[2] in ('status', 'finalize'))
    if len(rest) >= 1 and rest[0] == 'namespaces' and not is_namespace_object:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = '/'.join(rest[2:]) or None
    return parsing.ParsedPath(group, version, plural, namespace, name, subresource)


parsing.parse_path = parse_path  # kmock's Request._parse looks it up at call time


# --- patches ----------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """An APPROXIMATION of Kubernetes' strategic merge patch (see the module's doc)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get('$patch') == 'replace':
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith('$')}
    result = dict(target) if isinstance(target, dict) else {}
    orders = {k.split('/', 1)[1]: v for k, v in patch.items() if k.startswith('$setElementOrder/')}
    for key, value in patch.items():
        if key.startswith('$'):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and _named(value) and _named(result.get(key)):
            result[key] = _merge_named(result.get(key) or [], value, orders.get(key))
        elif isinstance(value, list):
            result[key] = [strategic_merge_patch(None, v) if isinstance(v, dict) else v
                           for v in value if not (isinstance(v, dict) and v.get('$patch') == 'delete')]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, dict) and 'name' in i for i in items)


def _merge_named(old: list[dict], new: list[dict], order: list[dict] | None) -> list[dict]:
    merged = {i['name']: i for i in old}
    names = [i['name'] for i in old]
    for item in new:
        if item.get('$patch') == 'delete':
            merged.pop(item['name'], None)
            continue
        if item['name'] not in merged:
            names.append(item['name'])
        merged[item['name']] = strategic_merge_patch(merged.get(item['name']), item)
    if order is not None:
        wanted = [i.get('name') for i in order if isinstance(i, dict)]
        names = [n for n in wanted if n in merged] + [n for n in names if n not in wanted]
    return [merged[n] for n in dict.fromkeys(names) if n in merged]


def json_patch(target: Any, ops: list[dict]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test (enough for the tests)."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace('~1', '/').replace('~0', '~') for p in op['path'].split('/')[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1] if parts else None
        kind = op['op']
        if kind == 'test':
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get('value'):
                raise ApiError(422, 'Invalid', f"test failed at {op['path']}")
        elif kind == 'remove':
            del parent[int(last) if isinstance(parent, list) else last]
        elif kind in ('add', 'replace'):
            if isinstance(parent, list):
                index = len(parent) if last == '-' else int(last)
                if kind == 'add':
                    parent.insert(index, op['value'])
                else:
                    parent[index] = op['value']
            else:
                parent[last] = op['value']
        else:
            raise ApiError(422, 'Invalid', f"unsupported JSON patch op {kind!r}")
    return doc


# --- selectors ----------------------------------------------------------------------------------

_SET_RE = re.compile(r'^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$')


def _split_selector(text: str) -> list[str]:
    parts, depth, current = [], 0, ''
    for ch in text:
        depth += ch == '('
        depth -= ch == ')'
        if ch == ',' and depth == 0:
            parts.append(current)
            current = ''
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def label_match(selector: str | None, labels: dict[str, str]) -> bool:
    for term in _split_selector(selector or ''):
        term = term.strip()
        if m := _SET_RE.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(',')}
            if (op == 'in') != (labels.get(key) in values):
                return False
        elif '!=' in term:
            key, value = (s.strip() for s in term.split('!=', 1))
            if labels.get(key) == value:
                return False
        elif '=' in term:
            key, value = (s.strip() for s in term.replace('==', '=').split('=', 1))
            if labels.get(key) != value:
                return False
        elif term.startswith('!'):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_match(selector: str | None, obj: dict) -> bool:
    meta = obj.get('metadata', {})
    for term in _split_selector(selector or ''):
        negate = '!=' in term
        key, value = (s.strip() for s in term.replace('!=', '=').replace('==', '=').split('=', 1))
        actual = {'metadata.name': meta.get('name'), 'metadata.namespace': meta.get('namespace')}.get(key)
        if (actual == value) == negate:
            return False
    return True


# --- the store ----------------------------------------------------------------------------------

Key = tuple[str, str | None, str]  # (group/version/plural, namespace or None, name)


class Store:
    """The objects, one resourceVersion counter, and the recent events for watches."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict] = {}
        self.version = 0
        self.events: deque[tuple[int, str, str, dict]] = deque(maxlen=EVENT_HISTORY)
        self.changed = asyncio.Condition()
        self.generation_of_watches = 0  # bumped by /fake/drop-watches
        self.subscribers: list[Any] = []  # callables(resource, type, obj), e.g. a kubelet

    def subscribe(self, callback: Any) -> None:
        self.subscribers.append(callback)

    async def emit(self, resource: str, kind: str, obj: dict) -> None:
        self.events.append((int(obj['metadata']['resourceVersion']), resource, kind, copy.deepcopy(obj)))
        async with self.changed:
            self.changed.notify_all()
        for callback in self.subscribers:
            result = callback(resource, kind, obj)
            if asyncio.iscoroutine(result):
                await result

    def stamp(self, obj: dict, old: dict | None) -> dict:
        self.version += 1
        meta = obj.setdefault('metadata', {})
        meta['resourceVersion'] = str(self.version)
        if old is None:
            meta['uid'] = str(uuid.uuid4())
            meta['creationTimestamp'] = now()
            meta['generation'] = 1
        else:
            old_meta = old.get('metadata', {})
            for field in ('uid', 'creationTimestamp'):
                meta[field] = old_meta.get(field)
            spec_changed = obj.get('spec') != old.get('spec')
            meta['generation'] = old_meta.get('generation', 1) + (1 if spec_changed else 0)
        return obj

    async def put(self, resource: str, namespace: str | None, obj: dict, *, create: bool | None = None) -> dict:
        """Creates (create=True), replaces (False) or either (None) an object; emits the event."""
        key = (resource, namespace, obj['metadata']['name'])
        old = self.objects.get(key)
        if create is True and old is not None:
            raise ApiError(409, 'AlreadyExists', f"{resource} \"{key[2]}\" already exists")
        if create is False and old is None:
            raise ApiError(404, 'NotFound', f"{resource} \"{key[2]}\" not found")
        if namespace is not None:
            obj['metadata']['namespace'] = namespace
        self.objects[key] = self.stamp(obj, old)
        await self.emit(resource, 'ADDED' if old is None else 'MODIFIED', obj)
        return obj

    async def delete(self, resource: str, namespace: str | None, name: str) -> dict:
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is None:
            raise ApiError(404, 'NotFound', f"{resource} \"{name}\" not found")
        self.version += 1
        obj['metadata']['resourceVersion'] = str(self.version)
        await self.emit(resource, 'DELETED', obj)
        return obj

    def select(self, resource: str, namespace: str | None, params: dict) -> list[dict]:
        return [obj for (res, ns, _), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
                if res == resource and (namespace is None or ns == namespace)
                and matches(obj, params)]


def matches(obj: dict, params: dict) -> bool:
    return (label_match(params.get('labelSelector'), obj.get('metadata', {}).get('labels') or {})
            and field_match(params.get('fieldSelector'), obj))


# --- the API ------------------------------------------------------------------------------------

class FakeApi(kmock.KubernetesScaffold):
    """kmock's discovery for the paths it knows; `Store` for every object request."""

    store: Store

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = Store()
        self.control = {
            ('POST', '/fake/apply'): self.fake_apply,
            ('POST', '/fake/drop-watches'): self.fake_drop_watches,
            ('GET', '/fake/objects'): self.fake_objects,
        }

    # kmock routes every request through _handle; object requests are answered here.
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.url.path.startswith('/openapi/'):  # no schemas: kubectl needs --validate=false
            return status(404, 'NotFound', 'the fake serves no OpenAPI schemas')
        control = self.control.get((request.method.value.upper(), request.url.path))
        if (request.resource is None or request.resource.plural is None) and control is None:
            try:
                return await super()._handle(request)  # kmock: discovery, version
            except kmock.KubernetesError as e:
                return status(e.status, e.reason or 'NotFound', e.message or request.url.path)
        try:
            return await (control(request) if control else self.serve_object(request))
        except ApiError as e:
            return status(e.code, e.reason, e.message)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, *YAML_ERRORS) as e:
            return status(400, 'BadRequest', f"{type(e).__name__}: {e}")

    async def _serve_version(self, request: kmock.Request) -> Any:
        # kmock names the core group's version "/v1"; Kubernetes (and kubectl) say "v1".
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and str(payload.get('groupVersion', '')).startswith('/'):
            payload['groupVersion'] = payload['groupVersion'][1:]
        for entry in payload.get('resources', []) if isinstance(payload, dict) else []:
            if '/' in entry.get('name', ''):  # a subresource: no short names (kubectl warns)
                entry['shortNames'] = []
        return payload

    def info(self, resource: references.resource) -> tuple[str, bool]:
        """(kind, namespaced) of a resource known to discovery."""
        for known, info in self.resources.items():
            if known == resource:
                return info.kind or resource.plural, bool(info.namespaced)
        raise ApiError(404, 'NotFound', f"the server could not find the requested resource ({resource})")

    @staticmethod
    def key(resource: references.resource) -> str:
        return f"{resource.group}/{resource.version}/{resource.plural}" if resource.group else \
            f"{resource.version}/{resource.plural}"

    async def serve_object(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource
        kind, namespaced = self.info(resource)
        res = self.key(resource)
        namespace = request.namespace if namespaced else None
        method = request.method.value.upper()
        params = request.params
        if request.subresource and request.subresource != 'status':
            return await self.serve_subresource(request)
        if method == 'GET' and params.get('watch') in ('true', '1'):
            return await self.serve_watch(request, res, namespace)
        if method == 'GET' and request.name is None:
            items = self.store.select(res, namespace, params)
            return aiohttp.web.json_response({
                'apiVersion': self.api_version(resource), 'kind': f'{kind}List',
                'metadata': {'resourceVersion': str(self.store.version)}, 'items': items,
            })
        if method == 'GET':
            return aiohttp.web.json_response(self.get(res, namespace, request.name))
        if method == 'POST' and request.name is None:
            obj = self.body(request)
            meta = obj.setdefault('metadata', {})
            if not meta.get('name') and meta.get('generateName'):
                meta['name'] = meta['generateName'] + uuid.uuid4().hex[:5]
            if not meta.get('name'):
                raise ApiError(422, 'Invalid', 'metadata.name: Required value')
            obj.setdefault('apiVersion', self.api_version(resource))
            obj.setdefault('kind', kind)
            if params.get('dryRun'):
                return aiohttp.web.json_response(obj, status=201)
            obj = await self.store.put(res, namespace or meta.get('namespace'), obj, create=True)
            await self.on_created(res, obj)
            return aiohttp.web.json_response(obj, status=201)
        if method == 'PUT':
            obj = self.body(request)
            old = self.get(res, namespace, request.name)
            sent = obj.get('metadata', {}).get('resourceVersion')
            if sent and sent != old['metadata']['resourceVersion']:
                raise ApiError(409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again')
            obj.setdefault('metadata', {})['name'] = request.name
            return aiohttp.web.json_response(await self.store.put(res, namespace, obj, create=False))
        if method == 'PATCH':
            old = self.store.objects.get((res, namespace, request.name))
            content_type = request.headers.get('Content-Type', '').split(';')[0].strip()
            patch = self.body(request, allow_list=True)
            if old is None and content_type == 'application/apply-patch+yaml':
                old = {'apiVersion': self.api_version(resource), 'kind': kind, 'metadata': {'name': request.name}}
            elif old is None:
                raise ApiError(404, 'NotFound', f"{res} \"{request.name}\" not found")
            if content_type == 'application/json-patch+json':
                new = json_patch(old, patch)
            elif content_type == 'application/strategic-merge-patch+json':
                new = strategic_merge_patch(old, patch)
            else:  # merge patch, and server-side apply taken as one
                new = merge_patch(old, patch)
            new.setdefault('metadata', {})['name'] = request.name
            return aiohttp.web.json_response(await self.store.put(res, namespace, new))
        if method == 'DELETE' and request.name is not None:
            return aiohttp.web.json_response(await self.store.delete(res, namespace, request.name))
        raise ApiError(405, 'MethodNotAllowed', f"{method} is not supported by the fake on {request.url.path}")

    async def serve_subresource(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """Subresources other than `status` (pod `log`, `exec`, ...): none yet."""
        raise ApiError(404, 'NotFound', f"the fake serves no {request.subresource!r} subresource")

    async def on_created(self, res: str, obj: dict) -> None:
        """A CustomResourceDefinition created through the API serves its resource."""
        if res == 'apiextensions.k8s.io/v1/customresourcedefinitions':
            self.serve_crd(obj)

    def serve_crd(self, crd: dict) -> None:
        spec = crd.get('spec', {})
        names = spec.get('names', {})
        for version in spec.get('versions', []):
            self.resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = {
                'kind': names.get('kind'),
                'singular': names.get('singular'),
                'namespaced': spec.get('scope', 'Namespaced') == 'Namespaced',
                'shortnames': names.get('shortNames', []),
                'verbs': ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
                'subresources': ['status'] if version.get('subresources', {}).get('status') is not None else [],
            }

    @staticmethod
    def api_version(resource: references.resource) -> str:
        return f"{resource.group}/{resource.version}" if resource.group else resource.version

    def get(self, res: str, namespace: str | None, name: str) -> dict:
        obj = self.store.objects.get((res, namespace, name))
        if obj is None:
            raise ApiError(404, 'NotFound', f"{res} \"{name}\" not found")
        return obj

    @staticmethod
    def body(request: kmock.Request, allow_list: bool = False) -> Any:
        data = request.data
        if data is None and request.text and yaml is not None:
            data = yaml.safe_load(request.text)
        if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
            raise ApiError(400, 'BadRequest', 'the request body is not a JSON object')
        return copy.deepcopy(data)

    async def serve_watch(self, request: kmock.Request, res: str, namespace: str | None) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        params = request.params
        store = self.store
        since = params.get('resourceVersion') or '0'
        if not since.isdigit():
            raise ApiError(400, 'BadRequest', f"resourceVersion {since!r} is not a number")
        since_version = int(since)
        timeout = float(params.get('timeoutSeconds') or 1800)
        oldest = store.events[0][0] if store.events else store.version + 1
        response = aiohttp.web.StreamResponse(headers={'Content-Type': 'application/json'})
        await response.prepare(raw)

        def wanted(obj: dict) -> bool:
            name_ok = request.name is None or obj['metadata'].get('name') == request.name
            ns_ok = namespace is None or obj['metadata'].get('namespace') == namespace
            return name_ok and ns_ok and matches(obj, params)

        async def send(kind: str, obj: dict) -> None:
            await response.write(json.dumps({'type': kind, 'object': obj}).encode() + b'\n')

        if since_version == 0:
            for obj in store.select(res, namespace, params):
                if wanted(obj):
                    await send('ADDED', obj)
            since_version = store.version
        elif since_version < store.version and since_version + 1 < oldest:
            await send('ERROR', {'apiVersion': 'v1', 'kind': 'Status', 'status': 'Failure', 'code': 410,
                                 'reason': 'Expired', 'message': f'too old resource version: {since}'})
            return response
        dropped_at = store.generation_of_watches
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while store.generation_of_watches == dropped_at:
                for version, event_res, kind, obj in list(store.events):
                    if version > since_version and event_res == res and wanted(obj):
                        await send(kind, obj)
                since_version = max(since_version, store.version)
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                async with store.changed:
                    try:
                        await asyncio.wait_for(store.changed.wait(), timeout=left)
                    except TimeoutError:
                        pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    # --- the control channel ------------------------------------------------------------------

    async def fake_apply(self, request: kmock.Request) -> aiohttp.web.Response:
        if request.headers.get('Content-Type', '').startswith('application/json'):
            docs = json.loads(request.text)
            docs = docs if isinstance(docs, list) else [docs]
        elif yaml is not None:
            docs = [d for d in yaml.safe_load_all(request.text) if d]
        else:
            raise ApiError(415, 'UnsupportedMediaType', 'send JSON (PyYAML is not installed)')
        stored = []
        for doc in docs:
            group_version, kind = doc.get('apiVersion', ''), doc.get('kind', '')
            for resource, info in self.resources.items():
                if self.api_version(resource) == group_version and info.kind == kind:
                    break
            else:
                return status(404, 'NotFound', f"no resource serves {group_version} {kind}")
            res = self.key(resource)
            namespace = (doc.get('metadata', {}).get('namespace') or self.default_namespace) \
                if info.namespaced else None
            obj = await self.store.put(res, namespace, copy.deepcopy(doc))
            if info.kind == 'CustomResourceDefinition':
                self.serve_crd(obj)
            stored.append(obj)
        return aiohttp.web.json_response({'items': stored})

    async def fake_drop_watches(self, request: kmock.Request) -> aiohttp.web.Response:
        self.store.generation_of_watches += 1
        async with self.store.changed:
            self.store.changed.notify_all()
        return aiohttp.web.json_response({'dropped': True})

    async def fake_objects(self, request: kmock.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({'items': list(self.store.objects.values())})

    default_namespace: str = 'default'


def kubeconfig(url: str, namespace: str) -> str:
    return json.dumps({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'fake',
        'clusters': [{'name': 'fake', 'cluster': {'server': url}}],
        'users': [{'name': 'fake', 'user': {'token': 'fake-token'}}],
        'contexts': [{'name': 'fake', 'context': {'cluster': 'fake', 'user': 'fake', 'namespace': namespace}}],
    }, indent=2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kubeconfig', required=True, help='where to write a kubeconfig for this fake')
    parser.add_argument('--port', type=int, default=0, help='the port (default: a free one)')
    parser.add_argument('--namespace', default='default', help="the kubeconfig's namespace")
    parser.add_argument('--crd', action='append', default=[], help='a CRD manifest to serve (repeatable)')
    args = parser.parse_args()

    api = FakeApi()
    api.default_namespace = args.namespace
    api.resources.load_bundled()
    for path in args.crd:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for doc in (yaml.safe_load_all(text) if yaml is not None else [json.loads(text)]):
            if doc and doc.get('kind') == 'CustomResourceDefinition':
                api.serve_crd(doc)
                await api.store.put('apiextensions.k8s.io/v1/customresourcedefinitions', None, doc)
    for ns in {'default', args.namespace}:
        await api.store.put('v1/namespaces', None, {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': ns}})

    async with kmock.Server(api, port=args.port or None) as server:
        url = f"http://{server.host}:{server.port}"
        with open(args.kubeconfig, 'w', encoding='utf-8') as f:
            f.write(kubeconfig(url, args.namespace))
        print(f"FAKE_KUBE_API {url}", flush=True)
        await asyncio.Event().wait()


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
