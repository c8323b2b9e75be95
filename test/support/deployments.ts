import type { FakeDeployment } from "../../dev/fake-replicate.js";

/** A deployment as GET /v1/deployments lists it. */
export function fakeDeployment(
  fullName: string,
  release: { number: number; createdAt: string; hardware: string; min: number; max: number; model?: string },
): FakeDeployment {
  const [owner, name] = fullName.split("/") as [string, string];
  return {
    owner,
    name,
    current_release: {
      number: release.number,
      model: release.model ?? `${owner}/${name}-model`,
      version: `v${release.number}`,
      created_at: release.createdAt,
      configuration: { hardware: release.hardware, min_instances: release.min, max_instances: release.max },
    },
  };
}
