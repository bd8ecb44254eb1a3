"""FedProx (Li et al., 2020): the proximal term lives in the client's loss; the server is FedAvg."""

from __future__ import annotations

from dataclasses import replace

from aggregator.strategies.fedavg import FedAvg
from fleet_protocol.errors import StrategyConfigError
from fleet_protocol.messages import FitConfig


class FedProx(FedAvg):
    """FedAvg on the server; tells devices to add (mu/2)||w - w_global||^2 to their loss."""

    def __init__(self, proximal_mu: float = 0.01, server_learning_rate: float = 1.0) -> None:
        super().__init__(server_learning_rate)
        if not proximal_mu >= 0:
            raise StrategyConfigError("proximal_mu must be >= 0")
        self.proximal_mu = float(proximal_mu)

    def configure_fit(self, config: FitConfig) -> FitConfig:
        """The round's fit config with this strategy's proximal_mu."""
        return replace(config, proximal_mu=self.proximal_mu)
