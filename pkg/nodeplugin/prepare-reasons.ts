// Why a prepare failed, as a fixed set of reasons: each reaches the kubelet's
// error ("<Reason>: <sentence>", shown by `kubectl describe pod`) and the
// claim's status.devices (a Ready=False condition with this reason), and
// docs/troubleshooting.md explains each.
export const PREPARE_REASON = {
  /** Start-up recovery has not finished, or the GPUs have not been discovered yet. */
  NotReady: 'NotReady',
  /** The ResourceClaim does not exist (any more), or cannot be read. */
  ClaimNotFound: 'ClaimNotFound',
  ClaimUnreadable: 'ClaimUnreadable',
  /** The allocation names devices this node does not have, or its config is invalid for them. */
  InvalidAllocation: 'InvalidAllocation',
  /** An earlier failed prepare left MIG instances that cannot be removed. */
  LeftoverInstances: 'LeftoverInstances',
  /** Switching a GPU's MIG mode failed or did not take effect. */
  MigModeSwitchFailed: 'MigModeSwitchFailed',
  /** nvidia-smi could not create the MIG instance, or created another one. */
  MigCreateFailed: 'MigCreateFailed',
  /** The MPS daemon or the time slice could not be set up. */
  SharingFailed: 'SharingFailed',
  /** A GPU could not be passed through: vfio-pci missing, its IOMMU group shared, in use, or the bind failed. */
  PassthroughFailed: 'PassthroughFailed',
  /** A device could not be set up for another reason; the message says which and why. */
  SetupFailed: 'SetupFailed',
  /** The claim's CDI spec could not be written. */
  CdiWriteFailed: 'CdiWriteFailed',
  /** The node's checkpoint could not be written, so nothing was changed. */
  CheckpointFailed: 'CheckpointFailed',
} as const;

export type PrepareReason = (typeof PREPARE_REASON)[keyof typeof PREPARE_REASON];
