#!/usr/bin/env python3
"""The FAKE Kubernetes API server of fake_api.py with a FAKE kubelet: what the tests of the
Kubernetes runtime of agents run against, since no cluster can be had here. Not Kubernetes.

What the fake kubelet does, for each Job created:

* makes its Pod (labels of the Job's pod template, `job-name`, owned by the Job), `Pending`;
* an image whose name contains `quota-refused` gets no pod at all, as when a ResourceQuota or
  an admission webhook refuses the pods of a Job (Kubernetes then only records an event);
* an image whose name contains `pull-error` never starts: the main container waits with
  `ImagePullBackOff` (and a message saying the fake pulls nothing), as a missing image does;
* otherwise it waits for the Secret the pod mounts, then RUNS the containers' commands on this
  machine, in order, with the paths of the pod mapped to a temporary folder of its own:
  the init container's `assay pod install /.assay/bin/assay` copies the real binary
  (`--assay-bin`) there, and the main container's `/.assay/bin/assay pod run --work
  /.assay/work/work.json --data /data` runs that copy with the Secret's `work.json` and a
  temporary `/data` (and `/testkube/outputs`); images are not pulled nor used;
* the main container's stdout and stderr are the pod's log, served (streaming with
  `follow=true`) at `GET …/pods/NAME/log`; the pod goes `Running`, then `Succeeded` or
  `Failed` with the container's exit code;
* a main container with an `exec` `readinessProbe` is not ready until that command (run on
  this machine like the container's, with its paths mapped, in its `/data`) exits 0: tried
  after `initialDelaySeconds`, then every `periodSeconds`, each bounded by `timeoutSeconds`;
  then the container is `ready` and the pod's `Ready` condition `True` (without a probe, at
  once), as the kubelet plays them;
* deleting a Job (any propagation) stops its process with SIGTERM (SIGKILL 10 s later) and
  deletes its pods and the objects it owns (the garbage collector's part);
* `GET /fake/created-jobs` lists every Job ever created (deleted ones too), for assertions
  about what was never made; `GET /fake/job-events` every creation and deletion of a Job in
  order (`type`, `name`, `labels`), for assertions about how many existed at once.

Usage: fake_kubelet.py --assay-bin PATH and fake_api.py's arguments. Prints the same
`FAKE_KUBE_API http://127.0.0.1:PORT` line once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import os
import shutil
import signal
import sys
import tempfile
import uuid
from typing import Any

import aiohttp.web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_api  # noqa: E402  (the fake API server this extends)
import kmock  # noqa: E402

JOBS = 'batch/v1/jobs'
PODS = 'v1/pods'
SECRETS = 'v1/secrets'
# Every pod of the fake runs on this machine: every pod's IP address is this machine's.
POD_IP = '127.0.0.1'


class Process:
    """A pod's main container run on this machine, and its log."""

    def __init__(self) -> None:
        self.log = bytearray()
        # The log as lines, each with the time it was written (RFC3339Nano with nine digits, as
        # the kubelet's CRI logs have it), for `timestamps=true`; a last line without its
        # newline is kept apart until it ends.
        self.lines: list[tuple[str, bytes]] = []
        self.partial = bytearray()
        self.done = False
        self.changed = asyncio.Condition()
        self.proc: asyncio.subprocess.Process | None = None
        self.stopped = False
        # `fake.assay.io/cut-log-after: N` on the pod: its first log stream ends after N lines.
        self.cut_after: int | None = None

    async def append(self, data: bytes) -> None:
        async with self.changed:
            self.log.extend(data)
            self.partial.extend(data)
            *complete, rest = bytes(self.partial).split(b'\n')
            stamp = fake_api.now_nano()
            self.lines.extend((stamp, line + b'\n') for line in complete)
            self.partial = bytearray(rest)
            self.changed.notify_all()

    async def finish(self) -> None:
        async with self.changed:
            if self.partial:
                self.lines.append((fake_api.now_nano(), bytes(self.partial)))
                self.partial = bytearray()
            self.done = True
            self.changed.notify_all()


class KubeletApi(fake_api.FakeApi):
    """fake_api.FakeApi plus the fake kubelet (see the module's doc)."""

    def setup_kubelet(self, assay_bin: str, root: str) -> None:
        self.assay_bin = assay_bin
        self.root = root
        self.processes: dict[tuple[str, str], Process] = {}  # (namespace, pod) -> Process
        self.pods_of_job: dict[tuple[str, str], list[str]] = {}
        self.created_jobs: list[dict] = []
        self.job_events: list[dict] = []
        self.store.subscribe(self.on_event)
        self.control[('GET', '/fake/created-jobs')] = self.fake_created_jobs
        self.control[('GET', '/fake/job-events')] = self.fake_job_events

    async def fake_job_events(self, request: kmock.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({'items': self.job_events})

    async def fake_created_jobs(self, request: kmock.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({'items': self.created_jobs})

    def on_event(self, resource: str, kind: str, obj: dict) -> None:
        if resource == JOBS and kind in ('ADDED', 'DELETED'):
            meta = obj.get('metadata', {})
            self.job_events.append({'type': kind, 'name': meta.get('name'),
                                    'labels': copy.deepcopy(meta.get('labels') or {})})
        if resource == JOBS and kind == 'ADDED':
            self.created_jobs.append(copy.deepcopy(obj))
            asyncio.get_running_loop().create_task(self.run_job(copy.deepcopy(obj)))
        elif resource == JOBS and kind == 'DELETED':
            asyncio.get_running_loop().create_task(self.job_deleted(copy.deepcopy(obj)))

    async def set_status(self, namespace: str, name: str, status: dict) -> None:
        pod = self.store.objects.get((PODS, namespace, name))
        if pod is None:
            return
        pod = copy.deepcopy(pod)
        pod['status'] = status
        await self.store.put(PODS, namespace, pod)

    async def run_job(self, job: dict) -> None:
        meta = job['metadata']
        namespace, job_name = meta['namespace'], meta['name']
        template = job['spec']['template']
        spec = template['spec']
        if 'quota-refused' in spec['containers'][0].get('image', ''):
            return
        pod_name = f"{job_name}-{uuid.uuid4().hex[:5]}"
        labels = dict(template.get('metadata', {}).get('labels') or {})
        labels.update({'job-name': job_name, 'batch.kubernetes.io/job-name': job_name})
        pod = {
            'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {
                'name': pod_name, 'namespace': namespace, 'labels': labels,
                'ownerReferences': [{'apiVersion': 'batch/v1', 'kind': 'Job', 'name': job_name,
                                     'uid': meta.get('uid', ''), 'controller': True}],
            },
            'spec': copy.deepcopy(spec),
            'status': {'phase': 'Pending', 'conditions': [{'type': 'PodScheduled', 'status': 'True'}]},
        }
        await self.store.put(PODS, namespace, pod, create=True)
        self.pods_of_job.setdefault((namespace, job_name), []).append(pod_name)
        main = spec['containers'][0]
        if 'pull-error' in main.get('image', ''):
            await self.set_status(namespace, pod_name, {
                'phase': 'Pending',
                'containerStatuses': [{
                    'name': main['name'], 'image': main['image'], 'imageID': '', 'ready': False,
                    'restartCount': 0,
                    'state': {'waiting': {
                        'reason': 'ImagePullBackOff',
                        'message': f'Back-off pulling image "{main["image"]}" (the FAKE kubelet pulls no images)',
                    }},
                }],
            })
            return

        # The Secret the pod mounts (the agent creates it just after the Job).
        folder = tempfile.mkdtemp(prefix=f'{pod_name}-', dir=self.root)
        secret_name = next((v['secret']['secretName'] for v in spec.get('volumes', []) if 'secret' in v), None)
        work_file = os.path.join(folder, 'work', 'work.json')
        os.makedirs(os.path.dirname(work_file))
        for _ in range(300):
            secret = self.store.objects.get((SECRETS, namespace, secret_name))
            if secret is not None:
                # Every key of the Secret is a file of the mounted folder (work.json, and the
                # channel.json of a pod that serves or talks to the endpoint).
                for key, value in secret['data'].items():
                    with open(os.path.join(folder, 'work', key), 'wb') as f:
                        f.write(base64.b64decode(value))
                break
            if (JOBS, namespace, job_name) not in self.store.objects:
                return
            await asyncio.sleep(0.1)
        else:
            await self.set_status(namespace, pod_name, {
                'phase': 'Pending',
                'containerStatuses': [{'name': main['name'], 'image': main['image'], 'imageID': '',
                                       'ready': False, 'restartCount': 0,
                                       'state': {'waiting': {'reason': 'CreateContainerConfigError',
                                                             'message': f'secret "{secret_name}" not found'}}}],
            })
            return

        paths = {
            '/.assay/bin/assay': os.path.join(folder, 'bin', 'assay'),
            '/data': os.path.join(folder, 'data'),
        }
        for key in os.listdir(os.path.dirname(work_file)):
            paths[f'/.assay/work/{key}'] = os.path.join(folder, 'work', key)
        os.makedirs(paths['/data'])

        def mapped(argv: list[str]) -> list[str]:
            return [paths.get(a, a) for a in argv]

        # Init containers, in order, for real (`assay pod install` copies the binary).
        init_statuses = []
        for init in spec.get('initContainers', []):
            argv = mapped(init['command'] + init.get('args', []))
            if argv[0] == 'assay':
                argv[0] = self.assay_bin
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            code = await proc.wait()
            init_statuses.append({'name': init['name'], 'image': init['image'], 'imageID': '', 'ready': False,
                                  'restartCount': 0, 'state': {'terminated': {'exitCode': code}}})
            if code != 0:
                await self.set_status(namespace, pod_name, {'phase': 'Failed', 'initContainerStatuses': init_statuses})
                return

        argv = mapped(main['command'] + main.get('args', [])) + [
            '--outputs', os.path.join(folder, 'outputs'), '--state', os.path.join(folder, 'state')]
        process = Process()
        cut = (template.get('metadata', {}).get('annotations') or {}).get('fake.assay.io/cut-log-after')
        process.cut_after = int(cut) if cut else None
        self.processes[(namespace, pod_name)] = process
        process.proc = await asyncio.create_subprocess_exec(
            *argv, cwd=paths['/data'], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        probe = (main.get('readinessProbe') or {}).get('exec')
        running = {'name': main['name'], 'image': main['image'], 'imageID': '', 'ready': probe is None,
                   'restartCount': 0, 'state': {'running': {'startedAt': fake_api.now()}}}

        def ready_condition(ready: bool) -> list[dict]:
            return [{'type': 'PodScheduled', 'status': 'True'},
                    {'type': 'Ready', 'status': 'True' if ready else 'False'}]

        await self.set_status(namespace, pod_name, {
            'phase': 'Running', 'podIP': POD_IP, 'initContainerStatuses': init_statuses,
            'containerStatuses': [running], 'conditions': ready_condition(probe is None)})
        prober = None
        if probe is not None:
            async def readiness() -> None:
                settings = main['readinessProbe']
                await asyncio.sleep(settings.get('initialDelaySeconds', 0))
                while process.proc is not None and process.proc.returncode is None:
                    check = await asyncio.create_subprocess_exec(
                        *mapped(probe.get('command') or ['false']), cwd=paths['/data'],
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                    try:
                        code = await asyncio.wait_for(check.wait(), settings.get('timeoutSeconds', 1))
                    except asyncio.TimeoutError:
                        check.kill()
                        code = -1
                    if code == 0 and process.proc.returncode is None:
                        running['ready'] = True
                        await self.set_status(namespace, pod_name, {
                            'phase': 'Running', 'podIP': POD_IP, 'initContainerStatuses': init_statuses,
                            'containerStatuses': [running], 'conditions': ready_condition(True)})
                        return
                    await asyncio.sleep(settings.get('periodSeconds', 10))
            prober = asyncio.get_running_loop().create_task(readiness())
        assert process.proc.stdout is not None
        while chunk := await process.proc.stdout.read(65536):
            await process.append(chunk)
        code = await process.proc.wait()
        if prober is not None:
            prober.cancel()
        await process.finish()
        ended = dict(running, ready=False, state={'terminated': {
            'exitCode': code, 'reason': 'Completed' if code == 0 else 'Error'}})
        await self.set_status(namespace, pod_name, {
            'phase': 'Succeeded' if code == 0 else 'Failed', 'podIP': POD_IP,
            'initContainerStatuses': init_statuses, 'containerStatuses': [ended],
            'conditions': ready_condition(False)})
        shutil.rmtree(folder, ignore_errors=True)

    async def job_deleted(self, job: dict) -> None:
        """The garbage collector and the kubelet's part of deleting a Job."""
        meta = job['metadata']
        namespace, name, uid = meta['namespace'], meta['name'], meta.get('uid')
        for pod_name in self.pods_of_job.pop((namespace, name), []):
            process = self.processes.get((namespace, pod_name))
            if process is not None and process.proc is not None and process.proc.returncode is None:
                process.stopped = True
                process.proc.send_signal(signal.SIGTERM)
                asyncio.get_running_loop().call_later(10, self.kill, process)
            if (PODS, namespace, pod_name) in self.store.objects:
                await self.store.delete(PODS, namespace, pod_name)
        for (res, ns, obj_name), obj in list(self.store.objects.items()):
            owners = obj.get('metadata', {}).get('ownerReferences') or []
            if ns == namespace and any(o.get('uid') == uid and o.get('kind') == 'Job' for o in owners):
                await self.store.delete(res, ns, obj_name)

    @staticmethod
    def kill(process: Process) -> None:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()

    async def serve_subresource(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.subresource != 'log' or request.resource.plural != 'pods':
            return await super().serve_subresource(request)
        namespace, name = request.namespace, request.name
        if (PODS, namespace, name) not in self.store.objects and (namespace, name) not in self.processes:
            raise fake_api.ApiError(404, 'NotFound', f'pods "{name}" not found')
        process = self.processes.get((namespace, name))
        if process is None:
            raise fake_api.ApiError(400, 'BadRequest',
                                    f'container "run" in pod "{name}" is waiting to start')
        container = request.params.get('container')
        if container not in (None, 'run'):
            raise fake_api.ApiError(400, 'BadRequest', f'container {container} is not valid for pod {name}')
        follow = request.params.get('follow') in ('true', '1')
        response = aiohttp.web.StreamResponse(headers={'Content-Type': 'text/plain'})
        await response.prepare(request._raw_request)
        if request.params.get('timestamps') in ('true', '1'):
            await self.serve_lines(process, follow, response)
            return response
        sent = 0
        try:
            while True:
                async with process.changed:
                    while sent == len(process.log) and not process.done and follow:
                        await process.changed.wait()
                    chunk = bytes(process.log[sent:])
                    done = process.done or not follow
                if chunk:
                    await response.write(chunk)
                    sent += len(chunk)
                if done and sent == len(process.log):
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


    async def serve_lines(self, process: Process, follow: bool, response: Any) -> None:
        """The log with `timestamps=true`: each line after its time and a space. The first
        stream of a pod annotated `fake.assay.io/cut-log-after: N` ends after N lines, as a
        connection to the API server that breaks mid-run."""
        cut, process.cut_after = process.cut_after, None
        sent = 0
        try:
            while True:
                async with process.changed:
                    while sent == len(process.lines) and not process.done and follow:
                        await process.changed.wait()
                    lines = process.lines[sent:]
                    done = process.done or not follow
                for stamp, line in lines:
                    if cut is not None and sent >= cut:
                        return
                    await response.write(stamp.encode() + b' ' + line)
                    sent += 1
                if done and sent == len(process.lines):
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kubeconfig', required=True)
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--namespace', default='default')
    parser.add_argument('--assay-bin', required=True, help='the assay binary the pods run')
    parser.add_argument('--root', help="the pods' folders go under it (made if missing; the "
                        'caller removes it): a test passes one in its own temporary folder, since '
                        'a process killed with SIGKILL cannot remove its own (each pod holds a copy '
                        'of the assay binary); default: a new temporary folder, removed at SIGTERM')
    args = parser.parse_args()

    if args.root:
        os.makedirs(args.root, exist_ok=True)
        root = args.root
    else:
        root = tempfile.mkdtemp(prefix='fake-kubelet-')
    api = KubeletApi()
    api.default_namespace = args.namespace
    api.resources.load_bundled()
    api.setup_kubelet(args.assay_bin, root)
    for ns in {'default', args.namespace}:
        await api.store.put('v1/namespaces', None, {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': ns}})
    try:
        async with kmock.Server(api, port=args.port or None) as server:
            url = f"http://{server.host}:{server.port}"
            with open(args.kubeconfig, 'w', encoding='utf-8') as f:
                f.write(fake_api.kubeconfig(url, args.namespace))
            print(f"FAKE_KUBE_API {url}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
    finally:
        for process in api.processes.values():
            KubeletApi.kill(process)
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
