// Device -> ONNX Runtime execution provider, and the up-front checks that turn "this EP cannot load
// here" into a DeviceUnavailableError naming the fix, before ORT gets a chance to print a stack of
// native log lines.
//
// onnxruntime-node 1.30 on linux/x64 lists backends cpu (bundled), webgpu (bundled, via Dawn on
// Vulkan), cuda and tensorrt (not bundled: their shared libraries are downloaded by the package's
// install script only when asked). Leaves out tensorrt, DirectML and CoreML: opd does not offer them.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DeviceUnavailableError } from './errors.ts';

export type Device = 'cpu' | 'cuda' | 'webgpu';

export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

export interface BackendInfo {
  name: string;
  bundled: boolean;
}

export const HINTS: Readonly<Record<Device, string>> = {
  cpu: '',
  cuda:
    'Install the CUDA execution provider: `npm install onnxruntime-node --onnxruntime-node-install=cuda12` ' +
    '(downloads libonnxruntime_providers_cuda.so; needs network, and CUDA 12 + cuDNN 9 on this machine).',
  webgpu:
    "The WebGPU provider runs on Vulkan here: it needs the Vulkan loader (libvulkan.so.1, e.g. apt's libvulkan1) " +
    'and a Vulkan-capable GPU with its driver (NVIDIA driver, or mesa-vulkan-drivers for AMD/Intel).',
};

/** Shared libraries an EP needs beside the binding; only cuda has any on linux. */
const EP_LIBS: Partial<Record<Device, readonly string[]>> = {
  cuda: process.platform === 'win32' ? ['onnxruntime_providers_shared.dll', 'onnxruntime_providers_cuda.dll'] : ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
};

/** The folder holding onnxruntime-node's native binding for this platform. */
export function bindingDir(): string {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node'); // .../onnxruntime-node/dist/index.js
  return join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * Throw DeviceUnavailableError if `device` cannot possibly load: its backend is not in the binding's
 * list, or it is not bundled and its shared libraries are absent. Passing does not prove the device
 * works (no GPU, wrong driver); session creation finds that out.
 */
export function checkDevice(session: string, device: Device, backends: readonly BackendInfo[], dir = bindingDir()): void {
  if (!DEVICES.includes(device)) {
    throw new DeviceUnavailableError(session, String(device), `unknown device (known: ${DEVICES.join(', ')})`, 'Use one of those.');
  }
  if (device === 'cpu') return;
  const backend = backends.find((b) => b.name === device);
  const platform = `${process.platform}/${process.arch}`;
  if (!backend) {
    const listed = backends.map((b) => b.name).join(', ');
    throw new DeviceUnavailableError(session, device, `this onnxruntime-node build for ${platform} has no ${device} provider (it lists: ${listed})`, HINTS[device]);
  }
  if (backend.bundled) return;
  const missing = (EP_LIBS[device] ?? []).filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    throw new DeviceUnavailableError(session, device, `${missing.join(' and ')} not found in ${dir}`, HINTS[device]);
  }
}

/** ORT's execution-provider list for a device. CPU is appended by ORT itself for unsupported ops. */
export function executionProviders(device: Device): string[] {
  return [device];
}

/**
 * True when an error from session creation on `device` is the EP failing to start (no adapter, no
 * library) rather than a bad model. ORT gives no error code for this, so match its wording.
 */
export function isProviderFailure(device: Device, message: string): boolean {
  if (device === 'cpu') return false;
  const patterns: Record<Exclude<Device, 'cpu'>, RegExp> = {
    cuda: /cuda|cudnn|cublas|providers_shared|Failed to load shared library/i,
    webgpu: /webgpu|adapter|vulkan|dawn/i,
  };
  return patterns[device].test(message);
}
