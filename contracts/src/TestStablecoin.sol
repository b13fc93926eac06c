// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A 6-decimal stand-in for a USD stablecoin on dev chains: anyone may mint.
contract TestStablecoin is ERC20 {
    constructor() ERC20("gpumarket Test USD", "tUSD") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mint test tokens (dev chains only; the production token is a real stablecoin).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
