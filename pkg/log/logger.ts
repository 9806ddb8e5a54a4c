// The project's one logger: JSON lines in production, readable text on a
// terminal, level from CASCADE_LOG_LEVEL (or LOG_LEVEL), structured fields.
import winston from 'winston';

export type Logger = winston.Logger;

function chooseFormat(): winston.Logform.Format {
  const wanted = process.env.CASCADE_LOG_FORMAT ?? (process.stderr.isTTY ? 'text' : 'json');
  if (wanted === 'json') {
    return winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json());
  }
  return winston.format.combine(
    winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
    winston.format.errors({ stack: true }),
    winston.format.printf((info) => {
      const { timestamp, level, message, component, ...rest } = info;
      const fields = Object.entries(rest)
        .filter(([k]) => typeof k === 'string' && k !== 'stack')
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      const comp = typeof component === 'string' ? `[${component}] ` : '';
      return `${String(timestamp)} ${level.toUpperCase().padEnd(5)} ${comp}${String(message)}${fields ? ' ' + fields : ''}`;
    }),
  );
}

let root: winston.Logger | undefined;

/** The process-wide root logger; every module takes a child of it. */
export function rootLogger(): winston.Logger {
  root ??= winston.createLogger({
    // Under jest only warnings and errors show unless asked, so test output stays readable.
    level: process.env.CASCADE_LOG_LEVEL ?? process.env.LOG_LEVEL ?? (process.env.JEST_WORKER_ID ? 'warn' : 'info'),
    format: chooseFormat(),
    // Logs go to stderr so that commands can print their results on stdout.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] })],
  });
  return root;
}

/** A child logger carrying the component name and any fixed fields. */
export function logger(component: string, fields: Record<string, unknown> = {}): winston.Logger {
  return rootLogger().child({ component, ...fields });
}

/** Renders any thrown value as a message, for log fields and error wrapping. */
export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0 && !err.message) {
    // Node's connect errors arrive as an AggregateError with an empty message.
    return err.errors.map(errorMessage).join('; ');
  }
  if (err instanceof Error) {
    if (err.message) return err.message;
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.name}: ${code}` : err.name;
  }
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}
