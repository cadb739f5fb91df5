"""The ``qrm`` reward: registration only; the reward is ``realm_cli.rewards.qrm.QRMReward``."""

from realm_cli.hookspecs import hookimpl
from realm_cli.rewards.qrm import QRMReward


@hookimpl
def register_rewards(register):
    register("qrm", QRMReward, description=QRMReward.__doc__)
