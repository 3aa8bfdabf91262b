"""Sweep config sections about where a sweep runs and what that hardware costs: [executor] and [cost].

Kept apart from bench.config (which holds them as fields) so that each module stays readable in one sitting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExecutorConfig(_Strict):
    """Where the comparison groups run: on this machine (local), or as Ray tasks on a cluster (pip extra 'ray')."""

    kind: Literal["local", "ray"] = Field("local", description="local: this machine; ray: a Ray cluster, one group per device")
    address: str | None = Field(None, description="ray: the cluster to join ('auto', 'ray://host:10001', host:port); "
                                                  "default $RAY_ADDRESS, else a Ray instance on this machine")
    max_retries: int = Field(1, ge=0, le=10, description="ray: a group whose worker or node is lost runs again this often")
    artifacts: Literal["auto", "shared", "object-store"] = Field(
        "auto", description="ray: how artifacts reach the groups: the cache directory when every node sees it "
                            "(auto checks), or Ray's object store")

    @model_validator(mode="after")
    def _ray_options(self) -> "ExecutorConfig":
        if self.kind == "local" and self.address is not None:
            raise ValueError("address applies to kind 'ray' (bench run --executor ray --ray-address ADDR)")
        return self


class CostConfig(_Strict):
    """What the hardware of a run costs, recorded with the run for `bench compare` (which --price overrides)."""

    usd_per_hour: float | None = Field(None, gt=0, description="price of what one group occupies (a GPU, or the CPU "
                                                              "cores of measure.threads), US dollars per hour")
    note: str | None = Field(None, description="where the price comes from, e.g. 'on-demand, 1 of 8 GPUs'")
