// Routes grpc-js's own diagnostics into the project logger instead of stderr
// text, so they carry the component field and follow the log format.
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { logger } from '../log/logger.js';

let routed = false;

/**
 * Installs the logger once per process. grpc-js's verbosity still follows
 * GRPC_VERBOSITY (default ERROR), so routine traffic stays quiet.
 */
export function routeGrpcLogs(): void {
  if (routed) return;
  routed = true;
  const log = logger('grpc');
  grpc.setLogger({
    error: (...args: unknown[]) => log.error(format(...args)),
    info: (...args: unknown[]) => log.info(format(...args)),
    debug: (...args: unknown[]) => log.debug(format(...args)),
  });
}
