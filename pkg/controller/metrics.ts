// Prometheus metrics of the controller (prom-client), served on /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly allocations: Counter<'outcome' | 'rank'>;
  readonly decisionSeconds: Histogram<'outcome'>;
  readonly pendingClaims: Gauge;
  readonly fleetUnits: Gauge;
  readonly fleetUsedUnits: Gauge;
  readonly fleetUtilization: Gauge;
  readonly fragmentation: Gauge;
  readonly deallocations: Counter;
  /** Pods evicted for higher-priority pods. */
  readonly preemptions: Counter;
  readonly reserveUnits: Gauge<'reserve'>;
  readonly reserveInUse: Gauge<'reserve'>;
  readonly reserveHeldBack: Gauge<'reserve'>;
  readonly writeConflicts: Counter;
  readonly isLeader: Gauge;
  readonly inventoryRebuilds: Counter;
  readonly inventoryRebuildSeconds: Histogram;
  readonly inventoryPools: Counter<'how'>;

  constructor(withDefaults = true) {
    const registers = [this.registry];
    if (withDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'cascade_controller_' });
    this.allocations = new Counter({
      name: 'cascade_allocations_total',
      help: 'Allocation decisions by outcome (allocated, failed) and the firstAvailable rank that won (1 = first choice; "exact" for plain requests).',
      labelNames: ['outcome', 'rank'],
      registers,
    });
    this.decisionSeconds = new Histogram({
      name: 'cascade_decision_seconds',
      help: 'Time the allocator took for one decision (a pod or a standalone claim).',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.pendingClaims = new Gauge({ name: 'cascade_pending_claims', help: 'Claims of ours that are not allocated yet.', registers });
    this.fleetUnits = new Gauge({ name: 'cascade_fleet_capacity_units', help: 'GPU capacity units in the fleet (one per GPU).', registers });
    this.fleetUsedUnits = new Gauge({ name: 'cascade_fleet_used_units', help: 'GPU capacity units in use (a partly used GPU counts by the share of its counters used).', registers });
    this.fleetUtilization = new Gauge({ name: 'cascade_fleet_utilization_ratio', help: 'Used units divided by capacity units.', registers });
    this.fragmentation = new Gauge({
      name: 'cascade_fleet_fragmentation_ratio',
      help: 'Share of partly used GPUs among GPUs that are not completely free: 0 when every GPU is either free or full.',
      registers,
    });
    this.deallocations = new Counter({ name: 'cascade_deallocations_total', help: 'Claims deallocated by the controller.', registers });
    this.reserveUnits = new Gauge({ name: 'cascade_failover_reserve_units', help: 'GPU capacity a FailoverReserve keeps free.', labelNames: ['reserve'], registers });
    this.reserveInUse = new Gauge({ name: 'cascade_failover_reserve_in_use_units', help: 'Part of the reserve taken by pods allowed to use it.', labelNames: ['reserve'], registers });
    this.reserveHeldBack = new Gauge({ name: 'cascade_failover_claims_held_back', help: 'Pods and claims waiting because they may not use the reserve.', labelNames: ['reserve'], registers });
    this.preemptions = new Counter({ name: 'cascade_preemption_victims_total', help: 'Lower-priority pods evicted so that a higher-priority pod gets their devices.', registers });
    this.writeConflicts = new Counter({ name: 'cascade_write_conflicts_total', help: 'Status writes that hit 409 Conflict and were retried.', registers });
    this.isLeader = new Gauge({ name: 'cascade_leader', help: '1 when this replica is the leader.', registers });
    this.inventoryRebuilds = new Counter({ name: 'cascade_inventory_rebuilds_total', help: 'Times the allocator index was rebuilt from the caches (slices, classes or nodes changed).', registers });
    this.inventoryPools = new Counter({
      name: 'cascade_inventory_pools_total',
      help: 'Pools a rebuild of the allocator index parsed from their slices (how="parsed") or took unchanged from the build before (how="reused").',
      labelNames: ['how'],
      registers,
    });
    this.inventoryRebuildSeconds = new Histogram({
      name: 'cascade_inventory_rebuild_seconds',
      help: 'Time one rebuild of the allocator index took (the decision that needed it waited this long).',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }
}
