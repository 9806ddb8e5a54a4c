// A per-node FIFO queue: prepare, unprepare and start-up recovery all change
// the same GPUs and the same checkpoint, so they run one at a time.

export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /**
   * Runs fn after everything queued before it has settled. A failure of one
   * task is returned to its caller and does not stop the tasks behind it.
   * Do not call run() from inside fn: it would wait for itself.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting += 1;
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => this.settle(),
      () => this.settle(),
    );
    return result;
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.waiting;
  }

  /** Resolves once every task queued so far has settled. */
  async idle(): Promise<void> {
    await this.tail;
  }

  private settle(): void {
    this.waiting -= 1;
  }
}
