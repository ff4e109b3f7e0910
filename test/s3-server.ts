// A real S3-compatible server for tests: Versity's gateway (versitygw, Apache-2.0, installed by
// scripts/setup.sh from the Go module proxy) serving a temporary folder on a free loopback port,
// with one bucket. Keys are random per start; `env` is what a prunewise process needs to use it.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../cli/temporal';

export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** the folder versitygw serves (bucket = a subfolder): tests damage objects here */
  dir: string;
  /** environment for a prunewise process using `s3://<bucket>/<prefix>` */
  env(prefix: string): Record<string, string>;
  stop(): Promise<void>;
}

export function versitygwBinary(): string {
  const candidates = [
    process.env.PRUNEWISE_VERSITYGW,
    path.join(__dirname, '..', '.venv', 'bin', 'versitygw'),
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'versitygw')),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error('versitygw is not installed: run scripts/setup.sh (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 into .venv/bin)');
  return found;
}

export async function startS3Server(bucket = 'prunewise-test'): Promise<S3Server> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-s3-'));
  const port = await freePort();
  const accessKey = `AK${crypto.randomBytes(8).toString('hex').toUpperCase()}`;
  const secretKey = `SK-${crypto.randomBytes(18).toString('hex')}`;
  const log = fs.openSync(path.join(os.tmpdir(), `pw-s3-${port}.log`), 'a');
  const child: ChildProcess = spawn(versitygwBinary(), ['--port', `127.0.0.1:${port}`, 'posix', dir], {
    env: { ...process.env, ROOT_ACCESS_KEY: accessKey, ROOT_SECRET_KEY: secretKey },
    stdio: ['ignore', log, log],
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
  });
  const t0 = Date.now();
  for (;;) {
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      break;
    } catch (e) {
      if (child.exitCode !== null || Date.now() - t0 > 30_000)
        throw new Error(`versitygw did not start: ${(e as Error).message} (log ${os.tmpdir()}/pw-s3-${port}.log)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  client.destroy();
  return {
    endpoint,
    bucket,
    accessKey,
    secretKey,
    dir,
    env: (prefix: string) => ({
      PRUNEWISE_ARTIFACTS: `s3://${bucket}/${prefix}`,
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: accessKey,
      AWS_SECRET_ACCESS_KEY: secretKey,
      AWS_REGION: 'us-east-1',
      PRUNEWISE_S3_PATH_STYLE: 'true',
    }),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
