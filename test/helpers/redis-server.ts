import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, redisServerArgs, waitForPort } from '../../src/local';

export { freePort };

/** A private redis-server as production runs it: AOF on, noeviction. Stop and start it to test outages. */
export class RedisServer {
  private child: ChildProcess | undefined;
  readonly dir: string;

  private constructor(readonly port: number) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paystate-redis-'));
  }

  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.startProcess();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async startProcess(): Promise<void> {
    const binary = process.env.REDIS_SERVER_BIN ?? 'redis-server';
    this.child = spawn(binary, redisServerArgs({ port: this.port, dir: this.dir }), { stdio: 'ignore' });
    await waitForPort(this.port, 5_000);
  }

  async stopProcess(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
